"""Who asks, through which door, from where: the :class:`Context` every use case is handed."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, QueryDict

from ..adapter import get_adapter


@dataclass(frozen=True)
class Context:
    """Who asks, through which door, from where."""

    source: str  # "api", "challenge", "admin" or "command"
    request: HttpRequest | None = None
    actor: Any = None  # the admin for admin acts, else None (the user acts)
    ip_address: str | None = None

    @classmethod
    def build(cls, source: str, request: HttpRequest | None = None, actor: Any = None) -> Context:
        return cls(
            source=source,
            request=without_credentials(request),
            actor=actor,
            ip_address=get_adapter().get_client_ip(request),
        )

    def actor_for(self, user: Any) -> Any:
        """Who acted on ``user``'s behalf: the admin for admin acts, else the user."""
        return self.actor if self.actor is not None else user


# Request headers that carry a credential: the bearer token, the host's token header, cookies.
_CREDENTIAL_HEADERS = (
    "HTTP_AUTHORIZATION",
    "HTTP_X_COGNITO_ACCESS_TOKEN",
    "HTTP_COOKIE",
    "CSRF_COOKIE",
)


# What a clone computes from its own META and body (every other public attribute on a request
# was put there by middleware: the user, the session, a host's tenant) and DRF's mirror of
# ``request.auth`` (our AccessToken, whose ``.raw`` is the token).
_NOT_COPIED = frozenset({"META", "environ", "GET", "POST", "COOKIES", "FILES", "headers", "auth"})


def without_credentials(request: HttpRequest | None) -> HttpRequest | None:
    """Return a copy of ``request`` fit for signal receivers: no credential headers, no
    cookies, no body (bodies carry codes, Sessions and challenge tokens).

    A new request is built from the kept headers rather than the original copied and
    emptied, so nothing of the body or the credentials can be left in a cache of its own.
    """
    if request is None:
        return None
    meta = {key: value for key, value in request.META.items() if key not in _CREDENTIAL_HEADERS}
    clone: HttpRequest
    if isinstance(request, WSGIRequest):
        # Rebuilt from its environ, so scheme, host and query string read as before.
        clone = WSGIRequest({**meta, "wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0"})
    else:
        clone = HttpRequest()
        clone.META = meta
        clone.method, clone.path, clone.path_info = request.method, request.path, request.path_info
        clone.GET = QueryDict(request.GET.urlencode())
    for name, value in vars(request).items():
        if not name.startswith("_") and name not in _NOT_COPIED and name not in vars(clone):
            setattr(clone, name, value)
    clone.resolver_match = request.resolver_match
    return clone
