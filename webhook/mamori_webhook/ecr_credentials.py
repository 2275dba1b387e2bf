"""Amazon ECR registry tokens at admission, as the webhook's AWS identity.

The token logic (GetAuthorizationToken, kept per account and region until a margin before it
expires) is the core's :mod:`mamori.supplychain.ecr_tokens`, shared with the operator's audit;
this module gives it the webhook's settings: ``--ecr-endpoint``, and the webhook named in a
refusal (whose IAM role lacks ``ecr:GetAuthorizationToken``). Admission waits on the call, so
the core's short timeouts and two attempts stand.
"""

from __future__ import annotations

from typing import Any

from mamori.supplychain.ecr_tokens import EcrCredentialsConfig, EcrTokenProvider


def ecr_token_provider(*, endpoint_url: str | None, session: Any = None) -> EcrTokenProvider:
    """The webhook's ECR token provider (boto3's credential chain unless ``session`` is given)."""
    config = EcrCredentialsConfig(endpoint_url=endpoint_url, identity="the webhook")
    return EcrTokenProvider(config, session=session)
