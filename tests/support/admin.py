"""Helpers for the admin tests: staff users with chosen permissions, running actions, the
verify page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

CHANGELIST = "admin:cognito_mfa_enrollment_changelist"
VERIFY_PAGE = "admin:cognito_mfa_enrollment_verify"
CHANGE_PAGE = "admin:cognito_mfa_enrollment_change"

HELP_DESK_PERMISSIONS = (
    "view_enrollment",
    "change_enrollment",
    "verify_enrollment",
    "view_auditevent",
)


def make_staff(username: str, permissions: tuple[str, ...] = HELP_DESK_PERMISSIONS) -> Any:
    """Create (or reuse) a staff user holding exactly ``permissions`` of cognito_mfa."""
    user_model = get_user_model()
    user, _ = user_model._default_manager.get_or_create(username=username)
    user.is_staff = True
    user.set_password("helpdesk-password-1")
    user.save()
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="cognito_mfa", codename__in=permissions)
    )
    return user_model._default_manager.get(pk=user.pk)  # fresh permission cache


def changelist_url() -> str:
    return reverse(CHANGELIST)


def run_action(client: Client, action: str, pks: list[Any], **form: Any) -> Any:
    """Submit an action from the changelist (as the action bar does); follow no redirect."""
    data = {"action": action, "index": 0, "_selected_action": [str(pk) for pk in pks]}
    data.update(form)
    return client.post(changelist_url(), data)


def confirm_action(client: Client, action: str, pks: list[Any], **form: Any) -> Any:
    """Submit an action's intermediate page (``post=yes``, no ``index``), as its form does."""
    data = {"action": action, "post": "yes", "_selected_action": [str(pk) for pk in pks]}
    data.update(form)
    return client.post(changelist_url(), data)


def verify_url(pk: Any) -> str:
    """The "Verify device with code" page of the enrollment ``pk``."""
    return reverse(VERIFY_PAGE, args=[str(pk)])


def change_url(pk: Any) -> str:
    return reverse(CHANGE_PAGE, args=[str(pk)])


def verify_with_code(client: Client, pk: Any, **form: Any) -> Any:
    """Submit the verify page of the enrollment ``pk`` (its form posts to the page's own URL);
    follow no redirect."""
    return client.post(verify_url(pk), form)


def messages_of(response: Any) -> list[str]:
    """The Django messages rendered with (or queued for) a response."""
    from django.contrib.messages import get_messages

    return [str(message) for message in get_messages(response.wsgi_request)]
