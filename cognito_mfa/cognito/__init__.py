"""The one boundary to Amazon Cognito: the only package that imports boto3 or botocore.

Methods are keyword-only, typed and speak the app's words; every botocore error becomes one
of :mod:`cognito_mfa.exceptions` through :data:`ERROR_MAP`, in one place. Cognito's own error
messages are never passed on (they can contain whole tokens); only the error code is logged.

- :mod:`.client`: :class:`CognitoClient` and the process's one client (:func:`get_client`);
- :mod:`.errors`: the error map;
- :mod:`.answers`: Cognito's answers read into the result types;
- :mod:`.factory`: the default client factory and the retry rules every client gets.
"""

from .answers import (
    AssociateResult,
    AuthStep,
    MFAState,
    RawVerifyResponse,
    VerifyResult,
    parse_mfas_can_setup,
    read_auth_step,
)
from .client import (
    COMPLETION_PATIENCE_S,
    CognitoClient,
    cli_skeleton,
    get_client,
    reset_client,
    secret_hash,
)
from .errors import ENABLE_TOTP_ERROR_MAP, ERROR_MAP, SESSION_ERROR_MAP, THROTTLING_CODES
from .factory import (
    NO_THROTTLE_RETRY_OPERATIONS,
    SINGLE_SHOT_OPERATIONS,
    build_boto3_client,
    limit_retries,
)

__all__ = [
    "COMPLETION_PATIENCE_S",
    "ENABLE_TOTP_ERROR_MAP",
    "ERROR_MAP",
    "NO_THROTTLE_RETRY_OPERATIONS",
    "SESSION_ERROR_MAP",
    "SINGLE_SHOT_OPERATIONS",
    "THROTTLING_CODES",
    "AssociateResult",
    "AuthStep",
    "CognitoClient",
    "MFAState",
    "RawVerifyResponse",
    "VerifyResult",
    "build_boto3_client",
    "cli_skeleton",
    "get_client",
    "limit_retries",
    "parse_mfas_can_setup",
    "read_auth_step",
    "reset_client",
    "secret_hash",
]
