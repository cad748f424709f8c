"""The enrollment admin's actions, in the manner of Django's ``delete_selected``.

Each action is offered only to an admin holding its permission (Django then refuses a
hand-made POST of it too), asks on an intermediate page before it changes anything, runs a flow
per row, and says what it did with ``message_user``. "Verify device with code" needs the
user's code, which no changelist POST carries: the action opens the enrollment's own verify
page (:mod:`.verify`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import exceptions as exc
from .. import flows
from ..adapter import get_adapter
from ..cognito import MFAState
from ..models import Enrollment, EnrollmentStatus
from .common import (
    admin_url,
    error_message,
    flow_context,
    own_enrollment_test,
    refuse_a_selection_too_large,
    render_page,
)


def action_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    template: str,
    queryset: QuerySet[Enrollment],
    action: str,
    title: str,
    **extra: Any,
) -> TemplateResponse:
    """Render an action's intermediate page; its form posts the selection back to the action."""
    return render_page(
        modeladmin,
        request,
        template,
        title,
        action_name=action,
        queryset=queryset,
        action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
        **extra,
    )


@admin.action(description=_("Verify device with code"), permissions=["verify"])
def verify_device(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Enrollment]
) -> HttpResponse | None:
    """Open the verify page of the one selected enrollment (it takes the user's code)."""
    selected = list(queryset.values_list("pk", flat=True)[:2])
    if len(selected) != 1:
        modeladmin.message_user(
            request,
            gettext("Select exactly one pending enrollment to verify."),
            messages.WARNING,
        )
        return None
    return HttpResponseRedirect(admin_url(modeladmin, "verify", quote(selected[0])))


@admin.action(description=_("Cancel selected pending enrollments"), permissions=["change"])
def cancel_enrollments(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Enrollment]
) -> HttpResponse | None:
    """Cancel the selected pending enrollments after a confirmation page."""
    if refuse_a_selection_too_large(modeladmin, request, queryset):
        return None
    pending = list(queryset.filter(status=EnrollmentStatus.PENDING).select_related("user"))
    if not pending:
        modeladmin.message_user(
            request, gettext("None of the selected enrollments is pending."), messages.WARNING
        )
        return None
    if request.POST.get("post") != "yes":
        return action_page(
            modeladmin,
            request,
            "cancel_confirmation.html",
            queryset,
            "cancel_enrollments",
            gettext("Cancel enrollments"),
            enrollments=pending,
            skipped=queryset.count() - len(pending),
        )
    context = flow_context(request)
    cancelled = 0
    for enrollment in pending:
        try:
            flows.cancel_enrollment(enrollment, context)
        except exc.EnrollmentNotPending:
            continue
        cancelled += 1
        modeladmin.log_change(request, enrollment, gettext("Cancelled the enrollment."))
    modeladmin.message_user(
        request,
        ngettext("Cancelled %(count)d enrollment.", "Cancelled %(count)d enrollments.", cancelled)
        % {"count": cancelled},
        messages.SUCCESS if cancelled else messages.WARNING,
    )
    if cancelled < len(pending):
        busy = len(pending) - cancelled
        modeladmin.message_user(
            request,
            ngettext(
                "%(count)d enrollment was no longer pending and was left as it is.",
                "%(count)d enrollments were no longer pending and were left as they are.",
                busy,
            )
            % {"count": busy},
            messages.WARNING,
        )
    return None


@admin.action(description=_("Reset TOTP of the selected users"), permissions=["reset"])
def reset_totp(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Enrollment]
) -> HttpResponse | None:
    """Turn TOTP off in Cognito for the selected rows' users, after a confirmation page."""
    if refuse_a_selection_too_large(modeladmin, request, queryset):
        return None
    targets: dict[str, Enrollment] = {}
    own = unproven = False
    is_own_enrollment = own_enrollment_test(request)
    for enrollment in queryset.select_related("user").order_by("-created_at"):
        if enrollment.is_unproven_claim:
            unproven = True
            continue
        if is_own_enrollment(enrollment):
            own = True
            continue
        targets.setdefault(enrollment.cognito_username, enrollment)
    if unproven:
        modeladmin.message_user(
            request,
            gettext(
                "An unproven sign-in claim names no Cognito user whose TOTP could be "
                "reset; such rows were left out."
            ),
            messages.WARNING,
        )
    if own:
        modeladmin.message_user(
            request,
            gettext("You cannot reset your own TOTP here; your own row was left out."),
            messages.WARNING,
        )
    if not targets:
        return None
    if request.POST.get("post") != "yes":
        return action_page(
            modeladmin,
            request,
            "reset_totp_confirmation.html",
            queryset,
            "reset_totp",
            gettext("Reset TOTP"),
            targets=list(targets.values()),
        )
    context = flow_context(request)
    done = 0
    adapter = get_adapter()
    for name, enrollment in targets.items():
        # The admin chose this user (a sign-in challenge row may name nobody yet): the
        # reset's audit row and signal name the site account of that Cognito user.
        user = enrollment.user or adapter.get_user_for_cognito_username(name)
        try:
            result = flows.reset_totp(context, name, user)
        except exc.CognitoMFAError as error:
            modeladmin.message_user(
                request,
                gettext("TOTP of %(name)s could not be reset: %(reason)s")
                % {"name": name, "reason": error_message(error.code)},
                messages.ERROR,
            )
            continue
        done += 1
        modeladmin.log_change(request, enrollment, gettext("Reset the user's TOTP MFA in Cognito."))
        if result.token_error is not None:
            # TOTP is off, but the old authenticator is still registered in Cognito.
            modeladmin.message_user(
                request,
                gettext(
                    "TOTP MFA of %(name)s is off, but Cognito did not remove the "
                    "authenticator (%(code)s); reset again to remove it."
                )
                % {"name": name, "code": result.token_error},
                messages.WARNING,
            )
    if done:
        modeladmin.message_user(
            request,
            ngettext(
                "TOTP MFA was turned off for %(count)d user.",
                "TOTP MFA was turned off for %(count)d users.",
                done,
            )
            % {"count": done},
            messages.SUCCESS,
        )
    return None


@admin.action(description=_("Refresh MFA state from Cognito"), permissions=["change"])
def refresh_mfa_state(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Enrollment]
) -> HttpResponse | None:
    """Read each selected user's MFA state from Cognito and show it per row."""
    if refuse_a_selection_too_large(modeladmin, request, queryset):
        return None
    rows = list(queryset.select_related("user"))
    states = flows.refresh_mfa_states(flow_context(request), [row.cognito_username for row in rows])
    results: list[dict[str, Any]] = []
    for row in rows:
        state = states.get(row.cognito_username)
        if row.is_unproven_claim:
            error = gettext("An unproven sign-in claim names no Cognito user.")
            results.append({"enrollment": row, "state": None, "error": error})
        elif isinstance(state, MFAState):
            results.append({"enrollment": row, "state": state, "error": None})
        else:
            results.append({"enrollment": row, "state": None, "error": error_message(str(state))})
    read = sum(isinstance(state, MFAState) for state in states.values())
    failed = len(states) - read
    if read:  # reading nobody is no success: the warning below says why
        modeladmin.message_user(
            request,
            ngettext(
                "Read the MFA state of %(count)d user from Cognito.",
                "Read the MFA state of %(count)d users from Cognito.",
                read,
            )
            % {"count": read},
            messages.SUCCESS,
        )
    if failed:
        modeladmin.message_user(
            request,
            ngettext(
                "The MFA state of %(count)d user could not be read.",
                "The MFA state of %(count)d users could not be read.",
                failed,
            )
            % {"count": failed},
            messages.WARNING,
        )
    return action_page(
        modeladmin,
        request,
        "refresh_results.html",
        queryset,
        "refresh_mfa_state",
        gettext("MFA state from Cognito"),
        results=results,
    )
