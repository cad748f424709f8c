"""DRF authentication with Cognito access tokens."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from . import exceptions as exc
from .adapter import get_adapter
from .tokens import AccessToken, validate_access_token

HOST_TOKEN_HEADER = "HTTP_X_COGNITO_ACCESS_TOKEN"


class CognitoAccessTokenAuthentication(BaseAuthentication):
    """Authenticate ``Authorization: Bearer <access token>``.

    A host that signs users in another way (a session cookie) sends the token in
    ``X-Cognito-Access-Token`` instead; it must then belong to the signed-in user.
    ``request.auth`` is the validated :class:`~cognito_mfa.tokens.AccessToken`.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, AccessToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, raw = header.partition(" ")
            if scheme.lower() == "bearer":
                token = validate_access_token(raw.strip())
                return get_adapter().get_user_for_token(token), token
            # Another scheme is the host's own sign-in: its user may still send the token
            # in X-Cognito-Access-Token below.
        raw = request.META.get(HOST_TOKEN_HEADER, "")
        if not raw:
            return None
        # Django's own authentication (session middleware) already ran on the wrapped request.
        django_user = getattr(request._request, "user", None)
        if django_user is None or not django_user.is_authenticated:
            raise exc.NotAuthenticated()
        token = validate_access_token(raw.strip())
        if not get_adapter().user_matches_token(django_user, token):
            raise exc.TokenInvalid()
        return django_user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="cognito_mfa"'
