"""What the enrollment admin's actions and pages share: how they name an enrollment and an
error code, whose enrollment it is, the flows' context of an admin request, and the page frame.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext, ngettext

from .. import flows
from ..adapter import get_adapter
from ..exceptions import help_desk_message
from ..models import Enrollment


def error_message(code: str) -> str:
    """Return the translated admin message for an error code (the help desk's words in the
    one table of error texts)."""
    return help_desk_message(code)


def enrollment_name(enrollment: Enrollment) -> str:
    """How the admin names an enrollment's Cognito user: a sign-in claim no tokens proved
    names nobody (the claimed name is kept only inside its encrypted credential)."""
    return enrollment.cognito_username or gettext("an unproven sign-in claim")


def flow_context(request: HttpRequest) -> flows.Context:
    """The flows' context of an admin request: the admin acts, from the admin."""
    return flows.Context.build("admin", request, actor=request.user)


def is_own_enrollment(request: HttpRequest, enrollment: Enrollment) -> bool:
    """Tell whether ``enrollment`` is the requesting admin's own (by site account or name)."""
    return own_enrollment_test(request)(enrollment)


def own_enrollment_test(request: HttpRequest) -> Callable[[Enrollment], bool]:
    """Return :func:`is_own_enrollment` for many rows of one request: the admin's Cognito
    username is looked up once, when a row first needs it, not once per row."""
    user: Any = request.user
    admins_cognito_username = functools.cache(lambda: get_adapter().get_cognito_username(user))

    def is_own(enrollment: Enrollment) -> bool:
        if enrollment.user_id is not None and enrollment.user_id == user.pk:
            return True
        # An unproven sign-in claim names nobody, so it is nobody's own.
        name = enrollment.cognito_username
        return bool(name) and name == admins_cognito_username()

    return is_own


def refuse_a_selection_too_large(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Enrollment]
) -> bool:
    """Refuse, with a message, a selection of more rows than the list's "Show all" page holds
    (``list_max_show_all``, 200 by Django's default): "Select all" on a large site would
    otherwise ask Cognito about every row within one request, at the quota's pace, and list
    them all on one confirmation page. Return whether it was refused; one bounded query."""
    limit = model_admin.list_max_show_all
    if len(queryset.values_list("pk", flat=True)[: limit + 1]) <= limit:
        return False
    model_admin.message_user(
        request,
        ngettext(
            "An action takes at most %(limit)d enrollment at a time and more are selected; "
            "nothing was changed. Filter the list to narrow the selection.",
            "An action takes at most %(limit)d enrollments at a time and more are selected; "
            "nothing was changed. Filter the list to narrow the selection.",
            limit,
        )
        % {"limit": limit},
        messages.WARNING,
    )
    return True


def admin_url(model_admin: admin.ModelAdmin, page: str, *args: Any) -> str:
    """Return the URL of one of ``model_admin``'s pages ("changelist", "change", "verify"...)."""
    opts = model_admin.opts
    return reverse(
        f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_{page}", args=args
    )


def render_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    template: str,
    title: str,
    **extra: Any,
) -> TemplateResponse:
    """Render one of the enrollment admin's own pages in the admin's frame.

    ``template`` is looked up for the model first, then for the app, as Django's admin does.
    """
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "media": model_admin.media,
        **extra,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(
        request,
        [
            f"admin/{opts.app_label}/{opts.model_name}/{template}",
            f"admin/{opts.app_label}/{template}",
        ],
        context,
    )
