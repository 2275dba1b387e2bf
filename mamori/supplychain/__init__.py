"""Supply-chain checks on images (issue 10): what registries say about an image.

``registry`` resolves tags to digests and reads manifests, referrers and blobs within deadlines
and size bounds; ``credentials`` finds the credentials a cluster would pull with; ``cosign`` and
``notation`` verify signatures (shared verdicts in ``verdicts``; ``aws_signer`` judges AWS
Signer's plugin attributes and signing-profile identities natively, without running a plugin);
``requirements`` is a policy's ``imageSignatures`` entry as a value; ``lookup`` is what the
rules ask, and ``live`` answers it for admission, cached and within one time budget per review.
"""
