"""The sign-in challenge (``MFA_SETUP``): its token, the claim it keeps, and its completion.

A challenge row is driven by Cognito's auth Session, not by an access token, and the username
it carries is only the caller's claim until Cognito hands out tokens. The claim is sealed with
the Session inside the encrypted credential; the completion, run after the shared verify,
answers the challenge and lets the tokens prove (or disprove) the claim.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import jwt
from django.views.decorators.debug import sensitive_variables

from .. import exceptions as exc
from ..adapter import get_adapter
from ..cognito import CognitoClient
from ..conf import app_settings
from ..models import Enrollment, EnrollmentFlow
from .context import Context
from .ending import expire_enrollment
from .preference import turn_on_totp
from .results import Accepted

logger = logging.getLogger("cognito_mfa.flows")


# Django's error reports show frame locals (the DEBUG page, AdminEmailHandler's HTML, trackers
# reading them): the functions below name the locals that hold a token, a Session or the
# claimed name, so those reports show stars instead.
@sensitive_variables("token")
def hash_challenge_token(token: str) -> str:
    """Return the stored form of a challenge token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@sensitive_variables("token")
def challenge_token_matches(enrollment: Enrollment, token: str) -> bool:
    """Compare a presented challenge token with the stored hash in constant time."""
    expected = enrollment.challenge_token_hash
    return bool(expected) and hmac.compare_digest(expected, hash_challenge_token(token))


@sensitive_variables("challenge_token")
def get_challenge_enrollment(enrollment_id: Any, challenge_token: str) -> Enrollment:
    """Return the challenge enrollment the token opens; NotFound for any mismatch."""
    enrollment = Enrollment.objects.filter(pk=enrollment_id, flow=EnrollmentFlow.CHALLENGE).unique()
    if enrollment is None or not challenge_token_matches(enrollment, challenge_token):
        # Same answer as an unknown id: the id alone tells nothing.
        raise exc.NotFound()
    return enrollment


@dataclass(frozen=True)
class ChallengeClaim:
    """What a sign-in challenge row keeps encrypted: the Session and the claimed username."""

    session: str = field(repr=False)
    cognito_username: str = field(repr=False)


@sensitive_variables("session", "cognito_username")
def seal_challenge_claim(session: str, cognito_username: str) -> str:
    """The plaintext a challenge row encrypts: a small JSON document (a Session, which is
    base64 text, never starts with ``{``, so rows written before it read as a bare Session)."""
    return json.dumps({"session": session, "username": cognito_username}, separators=(",", ":"))


@sensitive_variables("plaintext", "document")
def open_challenge_claim(enrollment: Enrollment, plaintext: str) -> ChallengeClaim:
    """Read the decrypted credential of a challenge row: the Session and the claimed name.

    A row written before claims were sealed holds the bare Session, and its claim in
    ``cognito_username``.
    """
    if plaintext.startswith("{"):
        try:
            document = json.loads(plaintext)
        except ValueError:
            document = None
        if isinstance(document, dict):
            session, username = document.get("session"), document.get("username")
            if isinstance(session, str) and isinstance(username, str):
                return ChallengeClaim(session=session, cognito_username=username)
    return ChallengeClaim(session=plaintext, cognito_username=enrollment.cognito_username)


@sensitive_variables("claim", "session", "tokens", "fresh_token")
def complete_challenge(
    context: Context,
    enrollment: Enrollment,
    lease: Any,
    client: CognitoClient,
    claim: ChallengeClaim,
    session: str | None,
) -> Accepted:
    """The step after Cognito accepted a challenge row's code (``session``: what Cognito
    handed back to continue the sign-in).

    With ``COGNITO_MFA_CHALLENGE_COMPLETE_AUTH`` the challenge is answered here; tokens that
    name the claimed user prove the claim, and TOTP is turned on with the fresh token. Without
    tokens the claim stays a claim: nobody's account is acted on by name, and the SPA answers
    the challenge and turns TOTP on with its own new token (POST preference/).
    """
    tokens, session, outcome = _answer_challenge(client, claim, session)
    fresh_token: str | None = (tokens or {}).get("AccessToken")
    proven = turned_on = False
    if fresh_token is not None:
        _prove_claim(context, enrollment, lease, claim, fresh_token)
        proven = True
        turned_on = turn_on_totp(client, fresh_token, app_settings.SET_PREFERRED)
    return Accepted(
        preference_owed=proven and not turned_on,
        preference_set=turned_on,
        proven_user=enrollment.user if proven else None,
        proven_username=enrollment.cognito_username if proven else None,
        unproven_claim=not proven,
        session=session,
        authentication_result=tokens,
        completion_outcome=outcome,
    )


@sensitive_variables("claim", "session", "step")
def _answer_challenge(
    client: CognitoClient, claim: ChallengeClaim, session: str | None
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """Answer ``MFA_SETUP`` here when the settings ask for it; return the tokens (or None),
    the Session that continues the sign-in (None once tokens came) and the audit outcome
    (None when not answered)."""
    if not (app_settings.CHALLENGE_COMPLETE_AUTH and session):
        return None, session, None
    try:
        step = client.respond_to_mfa_setup(
            username=claim.cognito_username, session=session, client_id=_challenge_client_id()
        )
    except exc.CognitoMFAError as error:
        # The token is verified; the SPA can still answer the challenge itself.
        logger.warning("cognito_mfa: RespondToAuthChallenge failed with %s", error.code)
        return None, session, error.code
    if step.authentication_result is None:
        return None, step.session, "challenge"
    return step.authentication_result, None, "ok"


@sensitive_variables("claim", "fresh_token")
def _prove_claim(
    context: Context, enrollment: Enrollment, lease: Any, claim: ChallengeClaim, fresh_token: str
) -> None:
    """Give the row in hand the user the fresh tokens prove: its signals and audit rows then
    name the Cognito user and the site's user (if any), and that user's consecutive wrong
    codes are forgotten as after any success. Tokens naming someone else than the claimed
    user expire the row (NotFound)."""
    if not _token_names(fresh_token, claim.cognito_username):
        # The Session belonged to someone else than the username the caller claimed.
        logger.warning("cognito_mfa: MFA_SETUP tokens name another user than claimed")
        expire_enrollment(enrollment, context, lease=lease)
        raise exc.NotFound()
    user: Any = get_adapter().get_user_for_cognito_username(claim.cognito_username)
    enrollment.user, enrollment.cognito_username = user, claim.cognito_username


@sensitive_variables("access_token", "claims")
def _token_names(access_token: str, cognito_username: str) -> bool:
    """Tell whether a token Cognito just handed us belongs to ``cognito_username``.

    The signature is not checked: the token came straight from Cognito over TLS, and only
    its ``username``/``sub`` claim is compared, never trusted for authorisation.
    """
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return cognito_username in (claims.get("username"), claims.get("sub"))


def _challenge_client_id() -> str:
    ids = app_settings.APP_CLIENT_IDS
    return ids[0] if ids else ""
