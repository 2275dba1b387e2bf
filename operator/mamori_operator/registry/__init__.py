"""What the registries the cluster pulls from look like: ECR repository posture.

``posture`` judges one repository's settings (pure), ``fetch`` reads them with boto3, and
``command`` is ``mamori check --ecr``: settings in, findings out, an exit status for CI.
"""
