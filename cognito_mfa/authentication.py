"""DRF authentication with Cognito access tokens."""

from __future__ import annotations

from typing import Any

from django.views.decorators.debug import sensitive_variables
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from . import exceptions as exc
from .adapter import get_adapter
from .tokens import AccessToken, validate_access_token

HOST_TOKEN_HEADER = "HTTP_X_COGNITO_ACCESS_TOKEN"


def _require_active(user: Any) -> None:
    """Refuse a deactivated account, as DRF's own authentication classes do."""
    if not getattr(user, "is_active", True):
        raise exc.AccountUnavailable()


class CognitoAccessTokenAuthentication(BaseAuthentication):
    """Authenticate ``Authorization: Bearer <access token>``.

    A host that signs users in another way (a session cookie) sends the token in
    ``X-Cognito-Access-Token`` instead; it must then belong to the signed-in user.
    ``request.auth`` is the validated :class:`~cognito_mfa.tokens.AccessToken`.
    """

    keyword = "Bearer"

    def __init__(self) -> None:
        # DRF builds the authenticators anew for each request: what the request's Bearer token
        # proved to be is kept here, so that the early look (presented_token) and
        # authenticate() check one token once, a forged one included.
        self._bearer: tuple[str, AccessToken | exc.TokenInvalid] | None = None

    # An error report of a failure below shows its frame's locals: the header and the token.
    @sensitive_variables("raw", "checked")
    def _bearer_token(self, raw: str) -> AccessToken:
        if self._bearer is None or self._bearer[0] != raw:
            checked: AccessToken | exc.TokenInvalid
            try:
                checked = validate_access_token(raw)
            except exc.TokenInvalid as error:
                checked = error
            self._bearer = (raw, checked)
        checked = self._bearer[1]
        if isinstance(checked, exc.TokenInvalid):
            raise checked
        return checked

    @sensitive_variables("scheme", "raw")
    def presented_token(self, request: Request) -> AccessToken | None:
        """The request's Bearer token, validated without reading any user; None if it sends no
        Bearer token (the host's ``X-Cognito-Access-Token`` needs its session read first).
        Raises TokenInvalid if it is not valid."""
        scheme, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        return self._bearer_token(raw.strip())

    @sensitive_variables("raw", "token")
    def authenticate(self, request: Request) -> tuple[Any, AccessToken] | None:
        token = self.presented_token(request)
        if token is not None:
            user = get_adapter().get_user_for_token(token)
            _require_active(user)
            return user, token
        # No Bearer token: another scheme (or none) is the host's own sign-in, whose user may
        # still send the token in X-Cognito-Access-Token.
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
        _require_active(django_user)
        return django_user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="cognito_mfa"'
