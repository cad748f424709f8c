"""The app's Cognito client: typed, keyword-only calls that speak the app's words.

Every call is charged to the site's call budget before anything is sent, and whatever botocore
raises leaves through :mod:`.errors`. :func:`get_client` hands out the one client a process
uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore
import botocore.exceptions
import botocore.session
import botocore.utils
from django.utils.module_loading import import_string
from django.views.decorators.debug import sensitive_variables

from .. import exceptions as exc
from ..budget import get_budget
from ..conf import app_settings
from ..redaction import install_log_redaction
from .answers import (
    AssociateResult,
    AuthStep,
    MFAState,
    RawVerifyResponse,
    VerifyResult,
    answer_object,
    read_associate_result,
    read_auth_step,
    read_mfa_state,
    read_raw_verify_response,
    read_verify_result,
)
from .errors import (
    ENABLE_TOTP_ERROR_MAP,
    SESSION_ERROR_MAP,
    error_code,
    is_throttled,
    overridden_errors,
    translate,
)
from .factory import limit_retries

# The whole boundary logs as one logger, "cognito_mfa.cognito", whichever module speaks.
logger = logging.getLogger(__package__)

# A call that completes a verified enrollment (the preference, the MFA_SETUP answer) waits up
# to this long for the budget rather than leave the preference owed: the code is spent.
COMPLETION_PATIENCE_S = 2.0


@sensitive_variables("client_secret", "digest")
def secret_hash(username: str, client_id: str, client_secret: str) -> str:
    """Return Cognito's ``SECRET_HASH``: base64(HMAC-SHA256(secret, username + client id))."""
    digest = hmac.new(
        client_secret.encode("utf-8"), (username + client_id).encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


class CognitoClient:
    """Typed, error-mapped access to the Cognito user pool API."""

    def __init__(self, client: Any) -> None:
        self.client = client

    # --- helpers --------------------------------------------------------------------------
    @contextmanager
    def _mapped_errors(
        self,
        operation: str,
        *,
        overrides: dict[str, type[exc.CognitoMFAError]] | None = None,
        finishing: bool = False,
        patience: float = 0,
        charged: bool = True,
    ) -> Iterator[None]:
        """Charge the call to the site's budget, then map whatever botocore raises.

        Every call to Cognito passes here first: a call the budget refuses raises
        CallBudgetExhausted before anything is sent. ``finishing``: the call completes an
        enrollment a user is verifying (admitted before starts); ``patience``: seconds it may
        wait for a slot; ``charged=False``: the AWS CLI mirror's opt-out. ``overrides`` map
        the error codes whose meaning depends on the call, before :data:`.errors.ERROR_MAP`.
        """
        if charged:
            get_budget().charge(operation, finishing=finishing, patience=patience)
        try:
            with overridden_errors(operation, overrides or {}):
                yield
        except exc.CognitoMFAError:
            raise  # already ours (an override of the mapping, a malformed answer)
        except Exception as error:
            if is_throttled(error):
                get_budget().throttled(operation)
            raise translate(operation, error) from None

    @staticmethod
    def _session_errors(session: str | None) -> dict[str, type[exc.CognitoMFAError]] | None:
        """The overrides of a call authorised by a challenge Session (see SESSION_ERROR_MAP)."""
        return SESSION_ERROR_MAP if session is not None else None

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
    @sensitive_variables("access_token", "session", "user_code", "params")
    def _verify_params(
        access_token: str | None, session: str | None, user_code: str, device_name: str | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            **CognitoClient._credential(access_token, session),
            "UserCode": user_code,
        }
        if device_name:
            params["FriendlyDeviceName"] = device_name
        return params

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
        with self._mapped_errors("AssociateSoftwareToken", overrides=self._session_errors(session)):
            response = self.client.associate_software_token(**params)
        return read_associate_result(response)

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
        params = self._verify_params(access_token, session, user_code, device_name)
        overrides = self._session_errors(session)
        with self._mapped_errors("VerifySoftwareToken", overrides=overrides, finishing=True):
            response = self.client.verify_software_token(**params)
        return read_verify_result(response)

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
        params = self._verify_params(access_token, session, user_code, device_name)
        with self._mapped_errors("VerifySoftwareToken", finishing=True, charged=charged):
            try:
                response = self.client.verify_software_token(**params)
            except botocore.exceptions.ClientError as error:
                code = str(error_code(error))
                if charged and is_throttled(error):
                    get_budget().throttled("VerifySoftwareToken")
                logger.info("Cognito VerifySoftwareToken failed with %s", code)
                return RawVerifyResponse(status=None, session=None, error_code=code)
        return read_raw_verify_response(response)

    @sensitive_variables("access_token")
    def set_user_mfa_preference(self, *, access_token: str, enabled: bool, preferred: bool) -> None:
        """Turn the caller's TOTP MFA on or off, and make it preferred or not."""
        overrides = ENABLE_TOTP_ERROR_MAP if enabled else None
        with self._mapped_errors(
            "SetUserMFAPreference", overrides=overrides, **self._completing(enabled)
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
        return read_mfa_state(response, "GetUser")

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
        return answer_object(response, operation)

    # --- IAM-authorised operations -----------------------------------------------------------
    def admin_get_user(self, *, username: str) -> MFAState:
        """Return a user's MFA settings (IAM: cognito-idp:AdminGetUser)."""
        with self._mapped_errors("AdminGetUser"):
            response = self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=username)
        return read_mfa_state(response, "AdminGetUser")

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
