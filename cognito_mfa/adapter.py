"""Overridable policy. Subclass :class:`DefaultAdapter` and point ``COGNITO_MFA_ADAPTER`` at it.

Policy only: which Django user a Cognito user is, how the authenticator entry is named, which
client address is audited. How the Cognito client is built and how the signing keys are
fetched are settings of the boundary (``COGNITO_MFA_CLIENT_FACTORY``,
``COGNITO_MFA_JWKS_FETCHER``).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Field
from django.http import HttpRequest
from django.utils.module_loading import import_string
from rest_framework.settings import api_settings

from . import exceptions as exc
from .conf import app_settings

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.db.models import Manager

    from .models import CognitoIdentity
    from .tokens import AccessToken


class DefaultAdapter:
    """Map Cognito users to Django users and decide how the authenticator entry looks."""

    def get_user_for_token(self, token: AccessToken) -> AbstractBaseUser:
        """Return the Django user bound to the token's Cognito user (pool id and ``sub``).

        A Cognito user seen for the first time is bound once, for good: to the site account of
        the same username if :meth:`may_adopt` allows it, else to a new account (named like the
        Cognito user, or by its ``sub`` when that name is taken). Raise AccountUnavailable when
        the same-named account is inactive or no valid username can be made.
        """
        if not token.sub:
            raise exc.TokenInvalid()
        pool_id = app_settings.USER_POOL_ID or ""
        identity = _first(
            _identities().filter(pool_id=pool_id, sub=token.sub).select_related("user")
        )
        if identity is None:
            return self._bind(token, pool_id)
        if identity.cognito_username != token.username:
            # Renamed in Cognito (or a preferred username changed): admin acts use the new one.
            _identities().filter(pk=identity.pk).update(cognito_username=token.username)
        return identity.user

    def may_adopt(self, user: AbstractBaseUser) -> bool:
        """Tell whether a Cognito user seen for the first time may take over the existing site
        account ``user`` of the same username (``COGNITO_MFA_ADOPT_EXISTING_USERS``).

        Only an active account bound to no Cognito user yet, neither staff nor superuser: a
        pool user who signs up as ``admin`` must not become the site's ``admin``.
        """
        return (
            app_settings.ADOPT_EXISTING_USERS
            and bool(getattr(user, "is_active", True))
            and not getattr(user, "is_staff", False)
            and not getattr(user, "is_superuser", False)
            and not _identities().filter(user_id=user.pk).exists()
        )

    def _bind(self, token: AccessToken, pool_id: str) -> AbstractBaseUser:
        user_model = get_user_model()
        manager = user_model._default_manager
        field_name = user_model.USERNAME_FIELD
        same_named = _first(manager.filter(**{field_name: token.username}))
        if same_named is not None and not getattr(same_named, "is_active", True):
            # A deactivated account keeps its name: a new account beside it would undo that.
            raise exc.AccountUnavailable()
        adopted = same_named is not None and self.may_adopt(same_named)
        username = token.username if same_named is None else token.sub
        try:
            with transaction.atomic():
                if adopted:
                    user: Any = same_named
                else:
                    user = manager.create(**{field_name: self._valid_username(username)})
                _identities().create(
                    pool_id=pool_id, sub=token.sub, user=user, cognito_username=token.username
                )
        except IntegrityError:
            # A concurrent first request bound this Cognito user (or took the name) first.
            identity = _first(
                _identities().filter(pool_id=pool_id, sub=token.sub).select_related("user")
            )
            if identity is None:
                raise exc.AccountUnavailable() from None
            return identity.user
        return user

    @staticmethod
    def _valid_username(username: str) -> str:
        """Return ``username`` if the user model's username field accepts it (its validators,
        its length), else raise AccountUnavailable."""
        user_model = get_user_model()
        field = user_model._meta.get_field(user_model.USERNAME_FIELD)
        if not isinstance(field, Field):
            raise exc.AccountUnavailable()
        try:
            return str(field.clean(username, None))
        except ValidationError:
            raise exc.AccountUnavailable() from None

    def user_matches_token(self, user: AbstractBaseUser, token: AccessToken) -> bool:
        """Tell whether ``token`` belongs to the already-authenticated ``user``: the user bound
        to the token's Cognito user, or, before any binding, the same-named account that is
        bound to no other Cognito user of the pool."""
        pool_id = app_settings.USER_POOL_ID or ""
        identity = _first(_identities().filter(pool_id=pool_id, sub=token.sub))
        if identity is not None:
            return bool(identity.user_id == user.pk)
        return bool(
            token.sub
            and user.get_username() == token.username
            and not _identities().filter(pool_id=pool_id, user_id=user.pk).exists()
        )

    def get_user_for_cognito_username(self, cognito_username: str) -> AbstractBaseUser | None:
        """Return the existing Django user of a Cognito user, or None (challenge flow, admin
        acts): the user bound to that username, else a same-named account :meth:`may_adopt`
        allows."""
        identity = _first(
            _identities()
            .filter(pool_id=app_settings.USER_POOL_ID or "", cognito_username=cognito_username)
            .select_related("user")
            .order_by("-created_at")  # a re-created username: the newest binding is its own
        )
        if identity is not None:
            return identity.user
        user_model = get_user_model()
        lookup: dict[str, Any] = {user_model.USERNAME_FIELD: cognito_username}
        user = _first(user_model._default_manager.filter(**lookup))
        return user if user is not None and self.may_adopt(user) else None

    def get_cognito_username(self, user: AbstractBaseUser) -> str:
        """Return the Cognito username of a Django user (admin acts on users): the one its
        binding last saw, else its own username."""
        bound = (
            _identities()
            .filter(pool_id=app_settings.USER_POOL_ID or "", user_id=user.pk)
            .values_list("cognito_username", flat=True)
            .first()
        )
        return str(bound) if bound else str(user.get_username())

    def get_totp_issuer(self, request: HttpRequest | None) -> str:
        """Return the issuer shown in authenticator apps: ``COGNITO_MFA_TOTP_ISSUER``, else
        the current ``Site``'s name (``django.contrib.sites``), else the request's host name
        without its port."""
        if app_settings.TOTP_ISSUER:
            return app_settings.TOTP_ISSUER
        if request is None:
            return "Django"
        # Imported here: django.contrib.sites is optional, and its models need the registry.
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
        return client_address(request.META)


def _identities() -> Manager[CognitoIdentity]:
    """Return ``CognitoIdentity.objects``.

    The one import of the models here is made on use: settings modules import adapters (and
    this module) before the app registry is ready, when no model can be imported yet.
    """
    from .models import CognitoIdentity

    return CognitoIdentity.objects


def client_address(meta: Any) -> str | None:
    """Return the client's address from a request's ``META``, trusting proxies per DRF.

    With ``REST_FRAMEWORK["NUM_PROXIES"] = n`` the n-th address from the right of
    ``X-Forwarded-For`` is the client (what the closest trusted proxy saw); without it only
    ``REMOTE_ADDR`` counts. DRF's own default would key on the whole ``X-Forwarded-For``
    header, which any client can rewrite to get a fresh bucket on every request. The
    throttles count by it and :meth:`DefaultAdapter.get_client_ip` audits it.
    """
    remote_addr = meta.get("REMOTE_ADDR") or None
    num_proxies = api_settings.NUM_PROXIES
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if not num_proxies or not forwarded:
        return remote_addr
    addresses = [part.strip() for part in forwarded.split(",")]
    candidate = addresses[-min(int(num_proxies), len(addresses))]
    try:
        # A short header means the leftmost entry is the client's own text: keep it only if
        # it is an address at all (audit rows store it in an address column).
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote_addr


def _first(queryset: Any) -> Any:
    """The row of a lookup that finds at most one (no ORDER BY unless the caller set one)."""
    return next(iter(queryset[:1]), None)


def get_adapter() -> DefaultAdapter:
    """Return an instance of the configured adapter class."""
    adapter_class = import_string(app_settings.ADAPTER)
    return adapter_class()
