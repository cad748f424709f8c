"""How the ``cognito-idp`` client is built, and what botocore may retry on it.

:func:`build_boto3_client` is the default ``COGNITO_MFA_CLIENT_FACTORY``; whichever factory a
site names, :func:`limit_retries` keeps botocore from repeating a call that spends something
single-use.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from ..conf import app_settings
from .errors import THROTTLING_CODES

# Operations that consume something single-use (a code, a Session): a blind retry after a
# timeout could spend the code twice or use a Session Cognito already consumed.
SINGLE_SHOT_OPERATIONS = ("VerifySoftwareToken", "RespondToAuthChallenge")

# Operations never retried when Cognito throttles them: besides the single-shot ones,
# AssociateSoftwareToken, which hands out a new key each time (and spends a Session in
# MFA_SETUP). A retry would spend more of the quota in a storm; the call budget backs off.
NO_THROTTLE_RETRY_OPERATIONS = (*SINGLE_SHOT_OPERATIONS, "AssociateSoftwareToken")


def _never_retry(caught_exception: Any = None, **_: Any) -> bool | None:
    # First non-None answer wins in botocore's needs-retry event: False means "do not retry".
    # A connection that was never made sent nothing, so that one case is safe to repeat
    # (None hands the decision to the standard retry mode, its attempts and back-off).
    if isinstance(
        caught_exception,
        botocore.exceptions.ConnectTimeoutError | botocore.exceptions.EndpointConnectionError,
    ):
        return None
    return False


def _never_retry_throttling(
    caught_exception: Any = None, response: Any = None, **_: Any
) -> bool | None:
    # A throttled answer is not retried; everything else goes on to the standard retry mode.
    if response is not None:
        code = (response[1] or {}).get("Error", {}).get("Code")
        if code in THROTTLING_CODES:
            return False
    return None


def build_boto3_client(session: boto3.session.Session | None = None) -> Any:
    """Build the ``cognito-idp`` client from settings: the default ``COGNITO_MFA_CLIENT_FACTORY``.

    The timeouts, the retry mode and the region and endpoint come from the settings;
    ``session`` is the boto3 session to build it from (a new default one if None). A site's
    own factory (a named profile, an assumed role) may build its session and call this.
    """
    config = botocore.config.Config(
        connect_timeout=app_settings.CONNECT_TIMEOUT,
        read_timeout=app_settings.READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": app_settings.MAX_RETRY_ATTEMPTS},
        user_agent_appid="cognito-mfa",
    )
    client = (session or boto3.session.Session()).client(
        "cognito-idp",
        region_name=app_settings.REGION,
        endpoint_url=app_settings.ENDPOINT_URL,
        config=config,
    )
    limit_retries(client)
    return client


def limit_retries(client: Any) -> None:
    """Keep botocore from retrying what must not be repeated (see SINGLE_SHOT_OPERATIONS and
    NO_THROTTLE_RETRY_OPERATIONS); applied to every factory's client, once."""
    service = client.meta.service_model.service_id.hyphenize()
    for operation in SINGLE_SHOT_OPERATIONS:
        client.meta.events.register_first(
            f"needs-retry.{service}.{operation}",
            _never_retry,
            unique_id=f"cognito_mfa.never_retry.{operation}",
        )
    for operation in NO_THROTTLE_RETRY_OPERATIONS:
        client.meta.events.register_first(
            f"needs-retry.{service}.{operation}",
            _never_retry_throttling,
            unique_id=f"cognito_mfa.never_retry_throttling.{operation}",
        )
