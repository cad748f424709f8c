"""The example site's sign-in calls to Cognito, made through the app's one client.

cognito_mfa signs no one in (a real site uses the Amplify libraries or the Hosted UI); the
demo page needs an access token and must meet the ``NEW_PASSWORD_REQUIRED`` and
``SOFTWARE_TOKEN_MFA`` challenges, so these two calls live here. Through
:meth:`cognito_mfa.cognito.CognitoClient.call` they are charged to the site's call budget and
their errors mapped like the app's own.
"""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables

from cognito_mfa.cognito import AuthStep, get_client, read_auth_step, secret_hash
from cognito_mfa.conf import app_settings


@sensitive_variables("password", "client_secret", "parameters", "response")
def initiate_password_auth(*, username: str, password: str, client_id: str) -> AuthStep:
    """Sign in with ``USER_PASSWORD_AUTH``; return the tokens or the next challenge."""
    parameters = {"USERNAME": username, "PASSWORD": password}
    client_secret = app_settings.APP_CLIENT_SECRET
    if client_secret:
        parameters["SECRET_HASH"] = secret_hash(username, client_id, client_secret)
    response = get_client().call(
        "InitiateAuth",
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters=parameters,
    )
    return read_auth_step(response, "InitiateAuth")


@sensitive_variables("session", "client_secret", "responses", "response")
def respond_to_challenge(
    *, client_id: str, challenge_name: str, session: str, responses: dict[str, str]
) -> AuthStep:
    """Answer a sign-in challenge (``NEW_PASSWORD_REQUIRED``, ``SOFTWARE_TOKEN_MFA``)."""
    responses = dict(responses)
    client_secret = app_settings.APP_CLIENT_SECRET
    if client_secret and "USERNAME" in responses:
        responses["SECRET_HASH"] = secret_hash(responses["USERNAME"], client_id, client_secret)
    response = get_client().call(
        "RespondToAuthChallenge",
        ClientId=client_id,
        ChallengeName=challenge_name,
        Session=session,
        ChallengeResponses=responses,
    )
    return read_auth_step(response, "RespondToAuthChallenge")
