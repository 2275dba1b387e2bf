"""Supply-chain checks on images (issue 10): what the registry says an image reference is.

The first slice is :mod:`mamori.supplychain.registry`, which resolves a tag to the digest the
registry serves for it. Nothing here is wired into admission or the policy yet. Standard library
only, like the rest of the core.
"""
