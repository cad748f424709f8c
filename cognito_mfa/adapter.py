"""Overridable policy. Subclass :class:`DefaultAdapter` and point ``COGNITO_MFA_ADAPTER`` at it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest
from django.utils.module_loading import import_string

from .conf import app_settings

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .tokens import AccessToken


class DefaultAdapter:
    """Map Cognito users to Django users and decide how the authenticator entry looks."""

    def get_user_for_token(self, token: AccessToken) -> AbstractBaseUser:
        """Return the Django user for a validated access token (default: get or create by the
        token's ``username`` in the user model's ``USERNAME_FIELD``)."""
        from . import statements  # models: this module is imported before the app registry

        user_model = get_user_model()
        # Every request of the API asks this: one short statement when the user model's
        # default manager is Django's stock one (statements.py), the ORM otherwise.
        user = statements.user_by_username(user_model, token.username)
        if user is None:
            lookup: dict[str, Any] = {user_model.USERNAME_FIELD: token.username}
            user, _ = user_model._default_manager.get_or_create(**lookup)
        return user

    def user_matches_token(self, user: AbstractBaseUser, token: AccessToken) -> bool:
        """Tell whether ``token`` belongs to the already-authenticated ``user``."""
        return bool(user.get_username() == token.username)

    def get_user_for_cognito_username(self, cognito_username: str) -> AbstractBaseUser | None:
        """Return the existing Django user of a Cognito user, or None (challenge flow)."""
        user_model = get_user_model()
        lookup: dict[str, Any] = {user_model.USERNAME_FIELD: cognito_username}
        return user_model._default_manager.filter(**lookup).first()

    def get_cognito_username(self, user: AbstractBaseUser) -> str:
        """Return the Cognito username of a Django user (admin acts on users)."""
        return str(user.get_username())

    def get_totp_issuer(self, request: HttpRequest | None) -> str:
        """Return the issuer shown in authenticator apps: ``COGNITO_MFA_TOTP_ISSUER``, else
        the current ``Site``'s name (``django.contrib.sites``), else the request's host name
        without its port."""
        if app_settings.TOTP_ISSUER:
            return app_settings.TOTP_ISSUER
        if request is None:
            return "Django"
        from django.contrib.sites.requests import RequestSite
        from django.contrib.sites.shortcuts import get_current_site

        try:
            site = get_current_site(request)
        except ObjectDoesNotExist:  # no SITE_ID and no Site for this host
            site = None
        # A RequestSite's name is the host with its port: the port means nothing to a user,
        # and its colon would split the label.
        if site is not None and not isinstance(site, RequestSite) and site.name:
            return str(site.name)
        return urlsplit("//" + request.get_host()).hostname or "Django"

    def get_totp_label(self, cognito_username: str, user: AbstractBaseUser | None) -> str:
        """Return the account name shown under the issuer in authenticator apps.

        The Django user's e-mail when it has one, else its ``get_username()``, else the
        Cognito username. Both flows ask with this one rule; the sign-in challenge passes no
        user, since its username is only the caller's claim until Cognito's tokens prove it
        (so a stranger's Session cannot read another user's e-mail off the QR code).
        """
        if user is not None:
            email = getattr(user, user.get_email_field_name(), None)
            if email:
                return str(email)
            username = user.get_username()
            if username:
                return str(username)
        return cognito_username

    def get_client_ip(self, request: HttpRequest | None) -> str | None:
        """Return the address written to audit events.

        The same address the throttles use: ``REMOTE_ADDR``, or the client named in
        ``X-Forwarded-For`` by the proxies counted in ``REST_FRAMEWORK["NUM_PROXIES"]``.
        """
        if request is None:
            return None
        from .throttling import client_address

        return client_address(request.META)

    def build_boto3_client(self) -> Any:
        """Build the botocore client (once per process); override to inject a session."""
        from .cognito import build_boto3_client

        return build_boto3_client()

    def fetch_jwks(self, url: str) -> dict[str, Any]:
        """Fetch the pool's JWKS document."""
        from .tokens import fetch_jwks_over_http

        return fetch_jwks_over_http(url)


def get_adapter() -> DefaultAdapter:
    """Return an instance of the configured adapter class."""
    adapter_class = import_string(app_settings.ADAPTER)
    return adapter_class()
