"""The one boundary to Amazon Cognito: the only module that imports boto3 or botocore.

Methods are keyword-only, typed and speak the app's words; every botocore error becomes one
of :mod:`cognito_mfa.exceptions` through :data:`ERROR_MAP`, in one place. Cognito's own error
messages are never passed on (they can contain whole tokens); only the error code is logged.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.session
import botocore.utils
from django.utils.module_loading import import_string
from django.views.decorators.debug import sensitive_variables

from . import exceptions as exc
from .budget import get_budget
from .conf import app_settings
from .redaction import install_log_redaction

logger = logging.getLogger(__name__)

# Cognito error code -> our exception. A code missing here is an operator problem.
ERROR_MAP: dict[str, type[exc.CognitoMFAError]] = {
    # the user's code was wrong (AWS says EnableSoftwareTokenMFA..., moto CodeMismatch...)
    "EnableSoftwareTokenMFAException": exc.InvalidCode,
    "CodeMismatchException": exc.InvalidCode,
    "ExpiredCodeException": exc.InvalidCode,
    # the access token or Session is expired, revoked or already used
    "NotAuthorizedException": exc.CredentialRejected,
    # the user has no verified token, so TOTP cannot be enabled
    "SoftwareTokenMFANotFoundException": exc.SoftwareTokenMissing,
    "UserNotFoundException": exc.CognitoUserNotFound,
    # a NEW_PASSWORD_REQUIRED answer whose password breaks the pool's policy
    "InvalidPasswordException": exc.InvalidInput,
    # Cognito is busy or failing: nothing changed, try later
    "TooManyRequestsException": exc.CognitoUnavailable,
    "LimitExceededException": exc.CognitoUnavailable,
    "InternalErrorException": exc.CognitoUnavailable,
    "ServiceUnavailable": exc.CognitoUnavailable,
    "ServiceUnavailableException": exc.CognitoUnavailable,
    "ThrottlingException": exc.CognitoUnavailable,
    "RequestTimeout": exc.CognitoUnavailable,
    "RequestTimeoutException": exc.CognitoUnavailable,
}

# Overrides of ERROR_MAP for calls authorised by a challenge Session: a Session Cognito no
# longer knows (used up by RespondToAuthChallenge, or past its life) can come back as
# ResourceNotFoundException, which then is the caller's credential, not an operator problem.
SESSION_ERROR_MAP: dict[str, type[exc.CognitoMFAError]] = {
    "ResourceNotFoundException": exc.CredentialRejected,
}

# Overrides for SetUserMFAPreference turning TOTP on: Cognito answers InvalidParameterException
# ("User has not set up / verified software token mfa") when there is no verified token.
ENABLE_TOTP_ERROR_MAP: dict[str, type[exc.CognitoMFAError]] = {
    "InvalidParameterException": exc.SoftwareTokenMissing,
}

# Operations that consume something single-use (a code, a Session): a blind retry after a
# timeout could spend the code twice or use a Session Cognito already consumed.
SINGLE_SHOT_OPERATIONS = ("VerifySoftwareToken", "RespondToAuthChallenge")

# Operations never retried when Cognito throttles them: besides the single-shot ones,
# AssociateSoftwareToken, which hands out a new key each time (and spends a Session in
# MFA_SETUP). A retry would spend more of the quota in a storm; the call budget backs off.
NO_THROTTLE_RETRY_OPERATIONS = (*SINGLE_SHOT_OPERATIONS, "AssociateSoftwareToken")

# Cognito's answers to a call past the account's request rate quota.
THROTTLING_CODES = frozenset({"TooManyRequestsException", "ThrottlingException"})

# A call that completes a verified enrollment (the preference, the MFA_SETUP answer) waits up
# to this long for the budget rather than leave the preference owed: the code is spent.
COMPLETION_PATIENCE_S = 2.0


@dataclass(frozen=True)
class AssociateResult:
    secret_code: str = field(repr=False)
    session: str | None = field(repr=False)


@dataclass(frozen=True)
class VerifyResult:
    session: str | None = field(repr=False)


@dataclass(frozen=True)
class RawVerifyResponse:
    """``VerifySoftwareToken``'s answer as Cognito gave it (the AWS CLI mirror prints it).

    ``error_code`` is Cognito's error code when it refused the call; its message is never kept
    (it can contain the token).
    """

    status: str | None
    session: str | None
    error_code: str | None = None


@dataclass(frozen=True)
class MFAState:
    """A user's MFA settings as Cognito reports them."""

    software_token_mfa_enabled: bool
    preferred_mfa: str | None
    mfa_methods: tuple[str, ...]


@dataclass(frozen=True)
class AuthStep:
    """The outcome of a sign-in step: tokens, or the next challenge."""

    challenge_name: str | None
    session: str | None = field(repr=False)
    challenge_parameters: dict[str, Any] = field(repr=False)
    authentication_result: dict[str, Any] | None = field(repr=False)


def parse_mfas_can_setup(raw: Any) -> list[str]:
    """Parse ``MFAS_CAN_SETUP``: JSON from AWS, a Python repr from moto, or a list."""
    if isinstance(raw, list | tuple):
        return [str(item) for item in raw]
    if not isinstance(raw, str) or not raw.strip():
        return []
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(raw)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, list | tuple):
            return [str(item) for item in value]
    return []


@sensitive_variables("client_secret", "digest")
def secret_hash(username: str, client_id: str, client_secret: str) -> str:
    """Return Cognito's ``SECRET_HASH``: base64(HMAC-SHA256(secret, username + client id))."""
    digest = hmac.new(
        client_secret.encode("utf-8"), (username + client_id).encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


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


def _unexpected(operation: str, what: str) -> exc.CognitoConfigurationError:
    """Log an answer of the wrong shape for the operator (naming the field, never its value)
    and return the error the caller raises: a 502 ``cognito_error``."""
    logger.error("Cognito %s answered in an unexpected shape: %s", operation, what)
    return exc.CognitoConfigurationError()


def _answer(response: Any, operation: str) -> dict[str, Any]:
    """Return ``response`` if it is a JSON object; raise CognitoConfigurationError if not."""
    if not isinstance(response, dict):
        raise _unexpected(operation, f"the answer is a {type(response).__name__}")
    return response


def _text(response: dict[str, Any], key: str, operation: str) -> str | None:
    """Return the optional string ``response[key]`` (None if absent).

    Raise CognitoConfigurationError for a value that is not a string: botocore does not
    check the types of an answer.
    """
    value = response.get(key)
    if value is not None and not isinstance(value, str):
        raise _unexpected(operation, f"{key} is not a string")
    return value


def _required_text(response: dict[str, Any], key: str, operation: str) -> str:
    """Return the string ``response[key]``; raise CognitoConfigurationError if it is missing,
    empty or not a string."""
    value = _text(response, key, operation)
    if not value:
        raise _unexpected(operation, f"{key} is missing")
    return value


@sensitive_variables("response", "result")
def read_auth_step(response: Any, operation: str) -> AuthStep:
    """Read a sign-in step (``InitiateAuth``, ``RespondToAuthChallenge``) from Cognito's answer;
    raise CognitoConfigurationError for an answer of the wrong shape."""
    response = _answer(response, operation)
    parameters = response.get("ChallengeParameters") or {}
    if not isinstance(parameters, dict):
        raise _unexpected(operation, "ChallengeParameters is not an object")
    result = response.get("AuthenticationResult")
    if result is not None:
        if not isinstance(result, dict):
            raise _unexpected(operation, "AuthenticationResult is not an object")
        _text(result, "AccessToken", operation)
    return AuthStep(
        challenge_name=_text(response, "ChallengeName", operation),
        session=_text(response, "Session", operation),
        challenge_parameters=dict(parameters),
        authentication_result=result,
    )


def _unmapped_error(error: botocore.exceptions.ClientError) -> type[exc.CognitoMFAError]:
    """Classify an answer whose error code ERROR_MAP does not know, by its HTTP status.

    A 5xx without an AWS error type (an empty body, a load balancer's or VPC endpoint's own
    HTML or text page) reaches us named by its status, "503": Cognito or the path to it is
    down, nothing changed, the caller may retry. Any other unknown code, a proxy's 4xx page
    among them, is something the operator must look at.
    """
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if isinstance(status, int) and 500 <= status <= 599:
        return exc.CognitoUnavailable
    return exc.CognitoConfigurationError


class CognitoClient:
    """Typed, error-mapped access to the Cognito user pool API."""

    def __init__(self, client: Any) -> None:
        self.client = client

    # --- helpers --------------------------------------------------------------------------
    @contextmanager
    def _mapped_errors(
        self, operation: str, *, finishing: bool = False, patience: float = 0, charged: bool = True
    ) -> Iterator[None]:
        """Charge the call to the site's budget, then map whatever botocore raises.

        Every call to Cognito passes here first: a call the budget refuses raises
        CallBudgetExhausted before anything is sent. ``finishing``: the call completes an
        enrollment a user is verifying (admitted before starts); ``patience``: seconds it may
        wait for a slot; ``charged=False``: the AWS CLI mirror's opt-out.
        """
        if charged:
            get_budget().charge(operation, finishing=finishing, patience=patience)
        try:
            yield
        except botocore.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code", "Unknown")
            if code in THROTTLING_CODES:
                get_budget().throttled(operation)
            mapped = ERROR_MAP.get(code) or _unmapped_error(error)
            log = logger.error if mapped is exc.CognitoConfigurationError else logger.info
            log("Cognito %s failed with %s", operation, code)
            if mapped is exc.CognitoUnavailable:
                raise exc.CognitoUnavailable(
                    retry_after=app_settings.UNAVAILABLE_RETRY_AFTER
                ) from None
            raise mapped() from None
        except (
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionClosedError,
            botocore.exceptions.HTTPClientError,
        ) as error:
            logger.warning("Cognito %s unreachable: %s", operation, type(error).__name__)
            raise exc.CognitoUnavailable(retry_after=app_settings.UNAVAILABLE_RETRY_AFTER) from None
        except botocore.exceptions.NoCredentialsError:
            logger.error("Cognito %s needs AWS credentials and none are configured", operation)
            raise exc.CognitoConfigurationError() from None
        except botocore.exceptions.BotoCoreError as error:
            logger.error("Cognito %s failed: %s", operation, type(error).__name__)
            raise exc.CognitoConfigurationError() from None
        except exc.CognitoMFAError:
            raise  # already ours (an override of the mapping, a malformed answer)
        except Exception as error:
            # botocore could not read the answer (a JSON array or ``null`` from a proxy, say):
            # nothing is known to have changed, and it is not the caller's fault. Only the
            # exception's class is logged; its text may quote the answer.
            logger.error(
                "Cognito %s answered something unreadable: %s", operation, type(error).__name__
            )
            raise exc.CognitoConfigurationError() from None

    @contextmanager
    def _overridden_errors(
        self, operation: str, overrides: dict[str, type[exc.CognitoMFAError]]
    ) -> Iterator[None]:
        """Map error codes whose meaning depends on the call, before the general mapping."""
        try:
            yield
        except botocore.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code", "Unknown")
            if code not in overrides:
                raise
            logger.info("Cognito %s failed with %s", operation, code)
            raise overrides[code]() from None

    @staticmethod
    def _completing(enabling: bool) -> dict[str, Any]:
        """Budget options of a call that turns TOTP on (completes a verify), else none."""
        return {"finishing": True, "patience": COMPLETION_PATIENCE_S} if enabling else {}

    @staticmethod
    @sensitive_variables("access_token", "session")
    def _credential(access_token: str | None, session: str | None) -> dict[str, str]:
        # Cognito takes AccessToken or Session, never both.
        if (access_token is None) == (session is None):
            raise ValueError("pass exactly one of access_token and session")
        return {"AccessToken": access_token} if access_token is not None else {"Session": session}  # type: ignore[dict-item]

    @staticmethod
    def _mfa_state(response: Any, operation: str) -> MFAState:
        response = _answer(response, operation)
        methods = response.get("UserMFASettingList") or []
        if not isinstance(methods, list) or not all(isinstance(item, str) for item in methods):
            raise _unexpected(operation, "UserMFASettingList is not a list of strings")
        return MFAState(
            software_token_mfa_enabled="SOFTWARE_TOKEN_MFA" in methods,
            preferred_mfa=_text(response, "PreferredMfaSetting", operation) or None,
            mfa_methods=tuple(methods),
        )

    @property
    def user_pool_id(self) -> str:
        return app_settings.USER_POOL_ID or ""

    # --- user-authorised operations (access token or Session) -------------------------------
    # The locals of these methods hold tokens, Sessions, secrets and codes: Django's error
    # reports (the DEBUG page, AdminEmailHandler, trackers reading frame locals) hide them.
    @sensitive_variables("access_token", "session", "params", "response")
    def associate_software_token(
        self, *, access_token: str | None = None, session: str | None = None
    ) -> AssociateResult:
        """Start a software token association; return the secret (show once, never store)."""
        params = self._credential(access_token, session)
        with (
            self._mapped_errors("AssociateSoftwareToken"),
            self._overridden_errors(
                "AssociateSoftwareToken", SESSION_ERROR_MAP if session is not None else {}
            ),
        ):
            response = self.client.associate_software_token(**params)
        operation = "AssociateSoftwareToken"
        response = _answer(response, operation)
        return AssociateResult(
            secret_code=_required_text(response, "SecretCode", operation),
            session=_text(response, "Session", operation),
        )

    @sensitive_variables("access_token", "session", "user_code", "params", "response")
    def verify_software_token(
        self,
        *,
        access_token: str | None = None,
        session: str | None = None,
        user_code: str,
        device_name: str | None = None,
    ) -> VerifyResult:
        """Verify ``user_code``; raise InvalidCode unless Cognito answers ``SUCCESS``."""
        params: dict[str, Any] = {**self._credential(access_token, session), "UserCode": user_code}
        if device_name:
            params["FriendlyDeviceName"] = device_name
        with (
            self._mapped_errors("VerifySoftwareToken", finishing=True),
            self._overridden_errors(
                "VerifySoftwareToken", SESSION_ERROR_MAP if session is not None else {}
            ),
        ):
            response = self.client.verify_software_token(**params)
        response = _answer(response, "VerifySoftwareToken")
        status = _required_text(response, "Status", "VerifySoftwareToken")
        if status != "SUCCESS":
            # Fail closed: anything but SUCCESS (Cognito's other status is ERROR) is a rejected
            # code. An answer without a Status (a proxy's page) is not the user's doing: 502.
            raise exc.InvalidCode()
        return VerifyResult(session=_text(response, "Session", "VerifySoftwareToken"))

    @sensitive_variables("access_token", "session", "user_code", "params", "response")
    def verify_software_token_raw(
        self,
        *,
        access_token: str | None = None,
        session: str | None = None,
        user_code: str,
        device_name: str | None = None,
        charged: bool = True,
    ) -> RawVerifyResponse:
        """Call ``VerifySoftwareToken`` and return Cognito's ``Status``/``Session`` or error code.

        Unlike :meth:`verify_software_token` nothing is interpreted: a refusal by Cognito comes
        back as ``error_code``; only transport and configuration problems raise.
        ``charged=False`` leaves the call out of the site's budget (what ``aws`` would do).
        """
        params: dict[str, Any] = {**self._credential(access_token, session), "UserCode": user_code}
        if device_name:
            params["FriendlyDeviceName"] = device_name
        with self._mapped_errors("VerifySoftwareToken", finishing=True, charged=charged):
            try:
                response = self.client.verify_software_token(**params)
            except botocore.exceptions.ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", "Unknown"))
                if code in THROTTLING_CODES and charged:
                    get_budget().throttled("VerifySoftwareToken")
                logger.info("Cognito VerifySoftwareToken failed with %s", code)
                return RawVerifyResponse(status=None, session=None, error_code=code)
        operation = "VerifySoftwareToken"
        response = _answer(response, operation)
        return RawVerifyResponse(
            status=_text(response, "Status", operation),
            session=_text(response, "Session", operation),
        )

    @sensitive_variables("access_token")
    def set_user_mfa_preference(self, *, access_token: str, enabled: bool, preferred: bool) -> None:
        """Turn the caller's TOTP MFA on or off, and make it preferred or not."""
        with (
            self._mapped_errors("SetUserMFAPreference", **self._completing(enabled)),
            self._overridden_errors(
                "SetUserMFAPreference", ENABLE_TOTP_ERROR_MAP if enabled else {}
            ),
        ):
            self.client.set_user_mfa_preference(
                AccessToken=access_token,
                SoftwareTokenMfaSettings={"Enabled": enabled, "PreferredMfa": preferred},
            )

    @sensitive_variables("access_token")
    def get_user(self, *, access_token: str) -> MFAState:
        """Return the caller's MFA settings."""
        with self._mapped_errors("GetUser"):
            response = self.client.get_user(AccessToken=access_token)
        return self._mfa_state(response, "GetUser")

    @sensitive_variables("session", "client_secret", "responses", "response")
    def respond_to_mfa_setup(self, *, username: str, session: str, client_id: str) -> AuthStep:
        """Answer the ``MFA_SETUP`` challenge after the token was verified."""
        responses = {"USERNAME": username}
        client_secret = app_settings.APP_CLIENT_SECRET
        if client_secret:
            responses["SECRET_HASH"] = secret_hash(username, client_id, client_secret)
        with self._mapped_errors("RespondToAuthChallenge", **self._completing(True)):
            response = self.client.respond_to_auth_challenge(
                ClientId=client_id,
                ChallengeName="MFA_SETUP",
                Session=session,
                ChallengeResponses=responses,
            )
        return read_auth_step(response, "RespondToAuthChallenge")

    # --- calls the app has no method for ----------------------------------------------------
    @sensitive_variables("params", "response")
    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Make the Cognito call ``operation`` (its name in the API reference, e.g.
        ``"InitiateAuth"``) with boto3's ``params``, and return the answer.

        For a site's own calls through the app's one client (the example project signs users
        in with it): charged to the site's call budget and error-mapped like every method
        here. Raise CognitoConfigurationError if the answer is not a JSON object.
        """
        method = getattr(self.client, botocore.xform_name(operation))
        with self._mapped_errors(operation):
            response = method(**params)
        return _answer(response, operation)

    # --- IAM-authorised operations -----------------------------------------------------------
    def admin_get_user(self, *, username: str) -> MFAState:
        """Return a user's MFA settings (IAM: cognito-idp:AdminGetUser)."""
        with self._mapped_errors("AdminGetUser"):
            response = self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=username)
        return self._mfa_state(response, "AdminGetUser")

    def admin_set_user_mfa_preference(
        self, *, username: str, enabled: bool, preferred: bool
    ) -> None:
        """Set a user's TOTP MFA preference (IAM: cognito-idp:AdminSetUserMFAPreference)."""
        with self._mapped_errors("AdminSetUserMFAPreference", **self._completing(enabled)):
            self.client.admin_set_user_mfa_preference(
                UserPoolId=self.user_pool_id,
                Username=username,
                SoftwareTokenMfaSettings={"Enabled": enabled, "PreferredMfa": preferred},
            )

    def admin_delete_software_token(self, *, username: str) -> bool:
        """Remove the user's software token where botocore and Cognito support it.

        Return False when this botocore has no ``AdminDeleteSoftwareToken`` (older releases) or
        the endpoint does not implement it; the preference is still turned off by the caller.
        """
        operation = getattr(self.client, "admin_delete_software_token", None)
        if operation is None:
            return False
        try:
            with self._mapped_errors("AdminDeleteSoftwareToken"):
                operation(UserPoolId=self.user_pool_id, Username=username)
        except exc.CognitoConfigurationError:
            return False
        return True


def cli_skeleton(operation: str, kind: str) -> dict[str, Any]:
    """Return the JSON skeleton the AWS CLI prints for ``--generate-cli-skeleton <kind>``.

    Built from botocore's service model by the CLI's rule: ``input`` leaves every member
    empty (member order as in the model); ``output`` fills each member with its own name.
    """
    model = botocore.session.get_session().get_service_model("cognito-idp")
    operation_model = model.operation_model(operation)
    shape = operation_model.input_shape if kind == "input" else operation_model.output_shape
    if shape is None:
        return {}
    generator = botocore.utils.ArgumentGenerator(use_member_names=kind == "output")
    return dict(generator.generate_skeleton(shape))


_lock = threading.Lock()
_client: CognitoClient | None = None


def get_client() -> CognitoClient:
    """Return the process-wide client, built on first use by ``COGNITO_MFA_CLIENT_FACTORY``
    (botocore clients are thread-safe once made); :func:`reset_client` drops it."""
    global _client
    client = _client
    if client is None:
        with _lock:
            client = _client
            if client is None:
                factory = import_string(app_settings.CLIENT_FACTORY)
                boto3_client = factory()
                # Whichever factory built it: no single-use call is retried, and the SDK's
                # loggers (which exist once a client does) are filtered.
                limit_retries(boto3_client)
                install_log_redaction()
                client = _client = CognitoClient(boto3_client)
    return client


def reset_client() -> None:
    """Forget the process-wide client (on ``setting_changed`` and in tests)."""
    global _client
    with _lock:
        _client = None
