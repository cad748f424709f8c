"""Django admin: enrollments and their audit trail, and the help desk's actions.

Rows change only through actions, and every action calls a flow (never Cognito directly), so
the attempt cap, the lock, the audit trail and the signals are the same as for the REST API.
Neither the stored credential nor the challenge-token hash is ever put on a page.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cached_property
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from . import exceptions as exc
from . import flows
from .adapter import get_adapter
from .cognito import MFAState
from .conf import app_settings
from .models import AuditEvent, Enrollment, EnrollmentStatus
from .serializers import USER_CODE_PATTERN
from .validators import validate_device_name

# What the admin is told for each error code (flows raise English text; this is translatable).
ERROR_MESSAGES = {
    "invalid_code": _("The code was not accepted."),
    "enrollment_locked": _("Too many wrong codes: the enrollment is locked."),
    "enrollment_not_pending": _("The enrollment is no longer pending."),
    "enrollment_expired": _("The enrollment has expired: the user has to start a new one."),
    "throttled": _("Too many attempts for this user. Try again later."),
    "cognito_unavailable": _("Cognito is unavailable. Nothing was changed; try again shortly."),
    "cognito_error": _("Cognito refused the request; see the server log for the reason."),
    "not_found": _("The Cognito user does not exist."),
    "token_invalid": _("Cognito no longer accepts the stored sign-in of this user."),
    "invalid": _("The request was not valid."),
}


# Longer search terms are refused: SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too
# complex"), and no searched field (usernames, e-mail addresses) is longer than 254 characters.
SEARCH_TERM_MAX_LENGTH = 256


# A list counts its rows up to this many; past it, the page shows PostgreSQL's estimate.
EXACT_COUNT_LIMIT = 10_000
# A search for a site username or e-mail address lists the enrollments of at most this many
# accounts (an address is usually one account's; the limit bounds the query's parameters).
SEARCHED_ACCOUNTS_LIMIT = 100


def enrollment_name(enrollment: Enrollment) -> str:
    """How the admin names an enrollment's Cognito user: a sign-in claim no tokens proved
    names nobody (the claimed name is kept only inside its encrypted credential)."""
    return enrollment.cognito_username or gettext("an unproven sign-in claim")


def error_message(code: str) -> str:
    """Return the translated admin message for an error code."""
    message = ERROR_MESSAGES.get(code)
    if message is None:
        return gettext("The request failed (%(code)s).") % {"code": code}
    return str(message)


class CodeInput(forms.TextInput):
    """A text box for the 6-digit code that never writes the code back into the page."""

    def format_value(self, value: Any) -> str | None:
        return None


class VerifyDeviceForm(forms.Form):
    """The code the user reads out, and the name their device will carry in Cognito."""

    user_code = forms.CharField(
        label=_("Code from the user's authenticator app"),
        strip=False,
        max_length=6,
        widget=CodeInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "pattern": "[0-9]{6}",
                "maxlength": "6",
                "autofocus": True,
            }
        ),
    )
    friendly_device_name = forms.CharField(
        label=_("Device name"),
        max_length=128,
        required=False,
        validators=[validate_device_name],  # the REST API's rule
    )

    def clean_user_code(self) -> str:
        code = self.cleaned_data["user_code"]
        # The API's rule: six ASCII digits (``\d`` would let other scripts' digits through).
        if not USER_CODE_PATTERN.fullmatch(code):
            raise forms.ValidationError(
                _("Enter the 6-digit code from the user's authenticator app."), code="invalid"
            )
        return str(code)


class ChangelistInputAdmin(admin.ModelAdmin):
    """A ModelAdmin whose changelist answers odd input with a message, never a 500.

    A NUL character cannot be sent to PostgreSQL at all (psycopg raises DataError), a very
    long search term is too complex a LIKE pattern for SQLite, and an action's selected ids
    that are not primary keys make the ``pk__in`` filter raise ValidationError.
    """

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        dropped = [
            key
            for key, values in request.GET.lists()
            if "\x00" in key or any("\x00" in value for value in values)
        ]
        if dropped and self.has_view_or_change_permission(request):
            kept = request.GET.copy()
            for key in dropped:
                del kept[key]
            self.message_user(
                request,
                gettext("A search or filter value held a NUL character and was ignored."),
                messages.WARNING,
            )
            query = kept.urlencode()
            return HttpResponseRedirect(f"{request.path}?{query}" if query else request.path)
        return super().changelist_view(request, extra_context)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if len(search_term) > SEARCH_TERM_MAX_LENGTH:
            self.message_user(
                request,
                gettext("Search terms are limited to %(max)d characters.")
                % {"max": SEARCH_TERM_MAX_LENGTH},
                messages.WARNING,
            )
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        pk = self.opts.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                pk.to_python(value)
        except ValidationError:
            self.message_user(
                request,
                gettext("The selection was not valid. No items have been changed."),
                messages.ERROR,
            )
            return None  # the changelist then redirects to itself
        return super().response_action(request, queryset, *args, **kwargs)


class EstimatingPaginator(Paginator):
    """A paginator whose count costs a page, not a table.

    It counts at most ``EXACT_COUNT_LIMIT + 1`` rows (exact for every list up to that size).
    Past it, on PostgreSQL, it takes the planner's estimate of the list's rows (``EXPLAIN``),
    which needs no scan and follows the filters and the search; a ``COUNT(*)`` over a million
    rows takes longer than the page it numbers. A count with a statement timeout was the
    other choice: it would spend its whole timeout on every large list before giving up. Other
    databases count every row: they have no estimate to offer, and sites that large run on
    PostgreSQL.
    """

    @cached_property
    def count(self) -> int:
        listed: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        rows = listed.order_by()
        counted: int = rows[: EXACT_COUNT_LIMIT + 1].count()
        if counted <= EXACT_COUNT_LIMIT:
            return counted
        if connections[rows.db].vendor != "postgresql":
            return int(rows.count())
        plan = rows.explain(format="json")
        estimate = int(json.loads(plan)[0]["Plan"]["Plan Rows"])
        return max(estimate, counted)


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter whose choices are known in advance: listing them reads no row."""

    field: str
    fixed_choices: tuple[tuple[str, Any], ...]

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, Any], ...]:
        return self.fixed_choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class SourceFilter(FixedChoicesFilter):
    title = _("source")
    field = "source"
    parameter_name = "source__exact"
    fixed_choices = (
        ("api", _("REST API")),
        ("challenge", _("sign-in challenge")),
        ("admin", _("admin")),
        ("command", _("management command")),
    )


def _error_codes() -> list[str]:
    found: set[str] = set()
    pending: list[type[exc.CognitoMFAError]] = [exc.CognitoMFAError]
    while pending:
        error = pending.pop()
        pending.extend(error.__subclasses__())
        if error is not exc.CognitoMFAError:
            found.add(error.code)
    return sorted(found)


class OutcomeFilter(FixedChoicesFilter):
    title = _("outcome")
    field = "outcome"
    parameter_name = "outcome__exact"
    # What an audit row's outcome can be: ok, a sign-in challenge handed back to the SPA, or
    # one of the error codes (which are public API, so this list changes with a release only).
    fixed_choices = (
        ("ok", _("ok")),
        ("challenge", _("challenge answered by the SPA")),
        *((code, code) for code in _error_codes()),
    )


class ScalableChangelistAdmin(ChangelistInputAdmin):
    """A changelist whose page costs about the same at a hundred rows and at millions.

    Every page reads one page of rows through an index (see the models' indexes): no full
    count (:class:`EstimatingPaginator`, no total beside a filtered count), no facet counts,
    filters whose choices are fixed, a date filter instead of ``date_hierarchy`` (which lists
    every month with a ``SELECT DISTINCT`` over the table), sorting on indexed columns only,
    and a search that an index answers. Columns no list shows are not read.
    """

    paginator = EstimatingPaginator
    # Rendering a row costs more than reading it: 50 rows a page halve a page's time (a help
    # desk finds a user by searching, not by paging).
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    search_help_text = _(
        "The start of a Cognito username (capitals count), or a site username or e-mail "
        "address in full."
    )
    list_deferred: tuple[str, ...] = ()

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # Shows the search box; get_search_results below does the searching.
        return ["cognito_username"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Find rows by the start of their Cognito username, or by their site account.

        A prefix ``LIKE 'x%'`` is answered by the username's index (PostgreSQL's
        ``varchar_pattern_ops`` index Django adds to indexed text columns); a contains-search
        ``LIKE '%x%'`` reads every row, and a trigram index would cost every write. The site
        account is looked up first, on its own table (its username is unique, so indexed; an
        e-mail address is matched only for a term that looks like one), so the list's query
        has no join to filter through.
        """
        term = search_term.strip()
        if len(search_term) > SEARCH_TERM_MAX_LENGTH or not term:
            return super().get_search_results(request, queryset, search_term)
        user_model = get_user_model()
        accounts = Q(**{user_model.USERNAME_FIELD: term})
        email_field = user_model.get_email_field_name()
        if "@" in term and any(field.name == email_field for field in user_model._meta.fields):
            accounts |= Q(**{f"{email_field}__iexact": term})
        owners = list(
            user_model._default_manager.filter(accounts).values_list("pk", flat=True)[
                :SEARCHED_ACCOUNTS_LIMIT
            ]
        )
        matches = Q(cognito_username__startswith=term)
        if owners:
            matches |= Q(user__in=owners)
        return queryset.filter(matches), False

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator:
        # Only the list's page defers them: actions get the rows whole. (The history page
        # pages its LogEntry rows with this paginator too.)
        if queryset.model is self.model:
            queryset = queryset.defer(*self.list_deferred)
        return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)


class AuditEventInline(admin.TabularInline):
    """The enrollment's audit trail, newest first, read-only."""

    model = AuditEvent
    fields = ("created_at", "kind", "outcome", "source", "actor", "ip_address", "detail")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return super().get_queryset(request).select_related("actor")


@admin.register(Enrollment)
class EnrollmentAdmin(ScalableChangelistAdmin):
    """Enrollments, read-only except through the actions."""

    list_display = (
        "cognito_user",
        "user",
        "flow",
        "status",
        "friendly_device_name",
        "attempts",
        "created_at",
        "expires_at",
        "verified_at",
        "verified_by",
    )
    list_filter = ("status", "flow", "created_at")
    list_select_related = ("user", "verified_by")
    # The primary key breaks ties, as in the index that serves this order.
    ordering = ("-created_at", "-id")
    sortable_by = ("cognito_user", "created_at")
    # Ciphertext of up to a few kB per row that no list shows.
    list_deferred = ("encrypted_credential", "challenge_token_hash")
    # Everything a help desk needs; the credential, the challenge-token hash and the lease
    # are deliberately absent from every list, form and history entry.
    fields = (
        "id",
        "user",
        "cognito_user",
        "flow",
        "status",
        "friendly_device_name",
        "attempts",
        "created_at",
        "expires_at",
        "credential_expires_at",
        "verified_at",
        "verified_by",
        "finished_at",
        "preference_pending",
    )
    readonly_fields = fields
    inlines = [AuditEventInline]
    actions = ["verify_device", "cancel_enrollments", "reset_totp", "refresh_mfa_state"]

    # --- what is visible ----------------------------------------------------------------
    @admin.display(description=_("Cognito username"), ordering="cognito_username")
    def cognito_user(self, enrollment: Enrollment) -> str:
        if enrollment.is_unproven_claim:
            return gettext("(unproven sign-in claim)")
        return enrollment.cognito_username

    # The verify form posts the user's code to the changelist: error reports show it masked.
    @method_decorator(sensitive_post_parameters("user_code"))
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, extra_context)

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 asks for the actions of a location (the change list, the change form)
        # and warns about an override without that parameter; 5.2 and 6.0 ask without one.
        if action_location is None:
            found = super().get_actions(request)
        else:
            found = super().get_actions(request, action_location=action_location)  # type: ignore[call-arg]
        # Bulk deletion would skip the per-row rule below (pending rows are cancelled instead).
        found.pop("delete_selected", None)
        return found

    # --- permissions --------------------------------------------------------------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        # Enrollments start with the user's own Cognito sign-in, never in the admin.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            # The change form is a read-only view: saving it could overwrite a concurrent
            # transition. The model-level permission still gates the actions.
            return False
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A live pending row is ended by the Cancel action (audited, and safe against a verify
        # in flight). Once past its expiry, and its verify lease if any (a verify that claimed it
        # before the expiry is still waiting for Cognito), nothing can verify it any more, so it
        # may go, also with its user: otherwise deleting that user would wait for the cleanup
        # command.
        if obj is not None and obj.is_pending:
            timestamp = timezone.now()
            if obj.expires_at > timestamp or obj.verify_in_flight(timestamp):
                return False
        return super().has_delete_permission(request, obj)

    def has_verify_permission(self, request: HttpRequest) -> bool:
        """Tell whether the admin may verify a device with the user's code."""
        opts = self.opts
        return bool(request.user.has_perm(f"{opts.app_label}.verify_enrollment"))

    def has_reset_permission(self, request: HttpRequest) -> bool:
        """Tell whether the admin may turn a user's TOTP off (change + verify permissions)."""
        return self.has_change_permission(request) and self.has_verify_permission(request)

    # --- helpers ------------------------------------------------------------------------
    def _context(self, request: HttpRequest) -> flows.Context:
        return flows.Context.build("admin", request, actor=request.user)

    def _is_own(self, request: HttpRequest, enrollment: Enrollment) -> bool:
        user: Any = request.user
        if enrollment.user_id is not None and enrollment.user_id == user.pk:
            return True
        # An unproven sign-in claim names nobody, so it is nobody's own.
        name = enrollment.cognito_username
        return bool(name) and name == get_adapter().get_cognito_username(user)

    def _page(
        self,
        request: HttpRequest,
        template: str,
        queryset: QuerySet[Enrollment],
        action: str,
        title: str,
        **extra: Any,
    ) -> TemplateResponse:
        opts = self.opts
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": opts,
            "app_label": opts.app_label,
            "action_name": action,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
            **extra,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            [
                f"admin/{opts.app_label}/{opts.model_name}/{template}",
                f"admin/{opts.app_label}/{template}",
            ],
            context,
        )

    # --- Verify device with code ---------------------------------------------------------
    @admin.action(description=_("Verify device with code"), permissions=["verify"])
    def verify_device(
        self, request: HttpRequest, queryset: QuerySet[Enrollment]
    ) -> HttpResponse | None:
        """Verify one pending enrollment with the code the user reads out."""
        if not self.has_verify_permission(request):
            # get_actions already hides the action; this guards a hand-made POST as well.
            self.message_user(request, gettext("You may not verify enrollments."), messages.ERROR)
            return None
        selected = list(queryset.select_related("user")[:2])
        if len(selected) != 1:
            self.message_user(
                request,
                gettext("Select exactly one pending enrollment to verify."),
                messages.WARNING,
            )
            return None
        enrollment = selected[0]
        if not enrollment.is_pending:
            self.message_user(
                request,
                gettext("%(name)s is not pending: only a pending enrollment can be verified.")
                % {"name": capfirst(enrollment_name(enrollment))},
                messages.WARNING,
            )
            return None
        if self._is_own(request, enrollment):
            self.message_user(
                request,
                gettext("You cannot verify your own enrollment; ask another administrator."),
                messages.ERROR,
            )
            return None

        if request.POST.get("post") == "yes":
            form = VerifyDeviceForm(request.POST)
            if form.is_valid():
                response = self._verify(request, enrollment, form)
                if response is None:
                    return None
        else:
            form = VerifyDeviceForm(
                initial={"friendly_device_name": enrollment.friendly_device_name}
            )
        return self._verify_page(request, enrollment, form)

    def _verify_page(
        self, request: HttpRequest, enrollment: Enrollment, form: VerifyDeviceForm
    ) -> TemplateResponse:
        enrollment.refresh_from_db()
        valid_until: datetime = enrollment.expires_at
        if enrollment.credential_expires_at is not None:
            valid_until = min(valid_until, enrollment.credential_expires_at)
        return self._page(
            request,
            "verify_device.html",
            Enrollment.objects.filter(pk=enrollment.pk),
            "verify_device",
            gettext("Verify device with code"),
            enrollment=enrollment,
            form=form,
            valid_until=valid_until,
            attempts_remaining=max(app_settings.MAX_ATTEMPTS - enrollment.attempts, 0),
        )

    # The form's cleaned data holds the code; the result holds a sign-in's tokens.
    @sensitive_variables("form", "verified")
    def _verify(
        self, request: HttpRequest, enrollment: Enrollment, form: VerifyDeviceForm
    ) -> TemplateResponse | None:
        """Run the verify flow; return the form page again while another try is possible."""
        name = enrollment_name(enrollment)
        device_name = form.cleaned_data["friendly_device_name"]
        try:
            verified = flows.verify_enrollment(
                self._context(request),
                enrollment=enrollment,
                user_code=form.cleaned_data["user_code"],
                device_name=device_name or None,
            )
        except exc.InvalidCode as error:
            remaining = error.attempts_remaining or 0
            # The LogEntry names the outcome only: never the code that was typed.
            self.log_change(request, enrollment, gettext("Verification with a code failed."))
            if remaining <= 0:
                self.message_user(
                    request,
                    gettext(
                        "The code for %(name)s was not accepted. Too many wrong codes: "
                        "the enrollment is locked."
                    )
                    % {"name": name},
                    messages.ERROR,
                )
                return None
            self.message_user(
                request,
                ngettext(
                    "The code for %(name)s was not accepted. %(count)d attempt remains.",
                    "The code for %(name)s was not accepted. %(count)d attempts remain.",
                    remaining,
                )
                % {"name": name, "count": remaining},
                messages.ERROR,
            )
            return self._verify_page(
                request, enrollment, VerifyDeviceForm(initial={"friendly_device_name": device_name})
            )
        except exc.CognitoMFAError as error:
            self.message_user(
                request,
                gettext("%(name)s could not be verified: %(reason)s")
                % {"name": capfirst(name), "reason": error_message(error.code)},
                messages.ERROR,
            )
            return None
        self.log_change(
            request,
            verified.enrollment,
            gettext("Verified the device with a code read out by the user."),
        )
        # A sign-in claim the tokens proved now names its user.
        name = enrollment_name(verified.enrollment)
        if verified.enrollment.is_unproven_claim:
            # No tokens named the claimed user: the device is the sign-in Session's, whoever
            # that is, and nothing was turned on for anyone by name.
            self.message_user(
                request,
                gettext(
                    "A device was verified for this sign-in. No tokens proved whose sign-in it "
                    "is, so TOTP MFA was not turned on for anyone by name: it is on once that "
                    "sign-in completes and the user turns it on."
                ),
                messages.WARNING,
            )
        elif verified.mfa_enabled:
            self.message_user(
                request,
                gettext("The device of %(name)s is verified and TOTP MFA is on.") % {"name": name},
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                gettext(
                    "The device of %(name)s is verified, but Cognito could not turn TOTP MFA on "
                    "yet; “Refresh MFA state from Cognito” or the cleanup command "
                    "will retry."
                )
                % {"name": name},
                messages.WARNING,
            )
        return None

    # --- Cancel -------------------------------------------------------------------------
    @admin.action(description=_("Cancel selected pending enrollments"), permissions=["change"])
    def cancel_enrollments(
        self, request: HttpRequest, queryset: QuerySet[Enrollment]
    ) -> HttpResponse | None:
        """Cancel the selected pending enrollments after a confirmation page."""
        pending = list(queryset.filter(status=EnrollmentStatus.PENDING).select_related("user"))
        if not pending:
            self.message_user(
                request, gettext("None of the selected enrollments is pending."), messages.WARNING
            )
            return None
        if request.POST.get("post") != "yes":
            return self._page(
                request,
                "cancel_confirmation.html",
                queryset,
                "cancel_enrollments",
                gettext("Cancel enrollments"),
                enrollments=pending,
                skipped=queryset.count() - len(pending),
            )
        context = self._context(request)
        cancelled = 0
        for enrollment in pending:
            try:
                flows.cancel_enrollment(enrollment, context)
            except exc.EnrollmentNotPending:
                continue
            cancelled += 1
            self.log_change(request, enrollment, gettext("Cancelled the enrollment."))
        self.message_user(
            request,
            ngettext(
                "Cancelled %(count)d enrollment.", "Cancelled %(count)d enrollments.", cancelled
            )
            % {"count": cancelled},
            messages.SUCCESS if cancelled else messages.WARNING,
        )
        if cancelled < len(pending):
            busy = len(pending) - cancelled
            self.message_user(
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

    # --- Reset TOTP ---------------------------------------------------------------------
    @admin.action(description=_("Reset TOTP of the selected users"), permissions=["reset"])
    def reset_totp(
        self, request: HttpRequest, queryset: QuerySet[Enrollment]
    ) -> HttpResponse | None:
        """Turn TOTP off in Cognito for the selected rows' users, after a confirmation page."""
        if not self.has_reset_permission(request):
            self.message_user(request, gettext("You may not reset TOTP."), messages.ERROR)
            return None
        targets: dict[str, Enrollment] = {}
        own = unproven = False
        for enrollment in queryset.select_related("user").order_by("-created_at"):
            if enrollment.is_unproven_claim:
                unproven = True
                continue
            if self._is_own(request, enrollment):
                own = True
                continue
            targets.setdefault(enrollment.cognito_username, enrollment)
        if unproven:
            self.message_user(
                request,
                gettext(
                    "An unproven sign-in claim names no Cognito user whose TOTP could be "
                    "reset; such rows were left out."
                ),
                messages.WARNING,
            )
        if own:
            self.message_user(
                request,
                gettext("You cannot reset your own TOTP here; your own row was left out."),
                messages.WARNING,
            )
        if not targets:
            return None
        if request.POST.get("post") != "yes":
            return self._page(
                request,
                "reset_totp_confirmation.html",
                queryset,
                "reset_totp",
                gettext("Reset TOTP"),
                targets=list(targets.values()),
            )
        context = self._context(request)
        done = 0
        adapter = get_adapter()
        for name, enrollment in targets.items():
            # The admin chose this user (a sign-in challenge row may name nobody yet): the
            # reset's audit row and signal name the site account of that Cognito user.
            user = enrollment.user or adapter.get_user_for_cognito_username(name)
            try:
                result = flows.reset_totp(context, name, user)
            except exc.CognitoMFAError as error:
                self.message_user(
                    request,
                    gettext("TOTP of %(name)s could not be reset: %(reason)s")
                    % {"name": name, "reason": error_message(error.code)},
                    messages.ERROR,
                )
                continue
            done += 1
            self.log_change(request, enrollment, gettext("Reset the user's TOTP MFA in Cognito."))
            if result.token_error is not None:
                # TOTP is off, but the old authenticator is still registered in Cognito.
                self.message_user(
                    request,
                    gettext(
                        "TOTP MFA of %(name)s is off, but Cognito did not remove the "
                        "authenticator (%(code)s); reset again to remove it."
                    )
                    % {"name": name, "code": result.token_error},
                    messages.WARNING,
                )
        if done:
            self.message_user(
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

    # --- Refresh MFA state --------------------------------------------------------------
    @admin.action(description=_("Refresh MFA state from Cognito"), permissions=["change"])
    def refresh_mfa_state(
        self, request: HttpRequest, queryset: QuerySet[Enrollment]
    ) -> HttpResponse | None:
        """Read each selected user's MFA state from Cognito and show it per row."""
        rows = list(queryset.select_related("user"))
        states = flows.refresh_mfa_states(
            self._context(request), [row.cognito_username for row in rows]
        )
        results: list[dict[str, Any]] = []
        for row in rows:
            state = states.get(row.cognito_username)
            if row.is_unproven_claim:
                error = gettext("An unproven sign-in claim names no Cognito user.")
                results.append({"enrollment": row, "state": None, "error": error})
            elif isinstance(state, MFAState):
                results.append({"enrollment": row, "state": state, "error": None})
            else:
                results.append(
                    {"enrollment": row, "state": None, "error": error_message(str(state))}
                )
        read = sum(isinstance(state, MFAState) for state in states.values())
        failed = len(states) - read
        if read:  # reading nobody is no success: the warning below says why
            self.message_user(
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
            self.message_user(
                request,
                ngettext(
                    "The MFA state of %(count)d user could not be read.",
                    "The MFA state of %(count)d users could not be read.",
                    failed,
                )
                % {"count": failed},
                messages.WARNING,
            )
        return self._page(
            request,
            "refresh_results.html",
            queryset,
            "refresh_mfa_state",
            gettext("MFA state from Cognito"),
            results=results,
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ScalableChangelistAdmin):
    """The audit trail, read-only (the cleanup command applies the retention period)."""

    list_display = (
        "created_at",
        "kind",
        "outcome",
        "source",
        "cognito_username",
        "user",
        "actor",
        "ip_address",
        "enrollment",
    )
    list_filter = ("kind", SourceFilter, OutcomeFilter, "created_at")
    list_select_related = ("user", "actor", "enrollment")
    ordering = ("-created_at", "-id")
    sortable_by = ("created_at",)
    list_deferred = (
        "detail",
        "enrollment__encrypted_credential",
        "enrollment__challenge_token_hash",
    )
    fields = (
        "created_at",
        "kind",
        "outcome",
        "source",
        "cognito_username",
        "user",
        "actor",
        "ip_address",
        "enrollment",
        "detail",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
