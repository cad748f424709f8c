"""The help desk's "Verify device with code" page: one enrollment's own URL, ``<pk>/verify/``.

Like the password page of Django's ``UserAdmin``, a form that carries a secret has a URL of its
own: only this view marks ``user_code`` as sensitive in error reports, and no changelist POST
ever carries a code. The permission is checked on the enrollment, the code goes to
:func:`flows.verify_enrollment` (the REST API's attempt cap, lock, audit row and signals), and
the page never writes the code back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.decorators import method_decorator
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from .. import exceptions as exc
from .. import flows
from ..conf import app_settings
from ..models import Enrollment
from ..serializers import USER_CODE_PATTERN
from ..validators import validate_device_name
from .common import (
    admin_url,
    enrollment_name,
    error_message,
    flow_context,
    is_own_enrollment,
    render_page,
)


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


class VerifyDeviceAdmin(admin.ModelAdmin):
    """The verify page of an enrollment admin: its URL, its permission and its view."""

    def has_verify_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Tell whether the admin may verify a device with the user's code (of ``obj``).

        It takes the model's view (or change) permission and ``verify_enrollment``; a subclass
        may narrow it per enrollment, as ``has_change_permission`` can be.
        """
        opts = self.opts
        return self.has_view_or_change_permission(request, obj) and bool(
            request.user.has_perm(f"{opts.app_label}.verify_enrollment")
        )

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts
        # Before the ModelAdmin's own URLs, whose "<path:object_id>/" would take it.
        verify = path(
            "<path:object_id>/verify/",
            self.admin_site.admin_view(self.verify_device_view),
            name=f"{opts.app_label}_{opts.model_name}_verify",
        )
        return [verify, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The change page links to the verify page of a pending enrollment.
        extra = {**(extra_context or {}), "can_verify_device": self.has_verify_permission(request)}
        return super().change_view(request, object_id, form_url, extra)

    # Only this view receives a code: error reports show it masked, and the form (which holds
    # it in its cleaned data) is hidden from the report's frames.
    @method_decorator(sensitive_post_parameters("user_code"))
    @sensitive_variables("form")
    def verify_device_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Show the verify page of one pending enrollment; on POST, verify its device."""
        if not self.has_verify_permission(request):
            raise PermissionDenied
        key = unquote(object_id)
        enrollment = self.get_object(request, key)
        if enrollment is None:
            self.message_user(
                request,
                gettext("No enrollment has the ID “%(key)s”. Perhaps it was deleted?")
                % {"key": key},
                messages.WARNING,
            )
            return HttpResponseRedirect(admin_url(self, "changelist"))
        if not self.has_verify_permission(request, enrollment):
            raise PermissionDenied
        refused = self._refuse(request, enrollment)
        if refused is not None:
            return refused
        if request.method == "POST":
            form = VerifyDeviceForm(request.POST)
            if form.is_valid():
                return self._verify_with_code(request, enrollment, form)
        else:
            form = VerifyDeviceForm(
                initial={"friendly_device_name": enrollment.friendly_device_name}
            )
        return self._verify_page(request, enrollment, form)

    def _refuse(self, request: HttpRequest, enrollment: Enrollment) -> HttpResponse | None:
        """Send the admin back to the enrollment's page if it is not theirs to verify now."""
        if not enrollment.is_pending:
            self.message_user(
                request,
                gettext("%(name)s is not pending: only a pending enrollment can be verified.")
                % {"name": capfirst(enrollment_name(enrollment))},
                messages.WARNING,
            )
        elif is_own_enrollment(request, enrollment):
            self.message_user(
                request,
                gettext("You cannot verify your own enrollment; ask another administrator."),
                messages.ERROR,
            )
        else:
            return None
        return HttpResponseRedirect(admin_url(self, "change", quote(enrollment.pk)))

    # The form's cleaned data holds the code; the result holds a sign-in's tokens.
    @sensitive_variables("form", "verified")
    def _verify_with_code(
        self, request: HttpRequest, enrollment: Enrollment, form: VerifyDeviceForm
    ) -> HttpResponse:
        """Run the verify flow: the form again after a wrong code while another try is
        possible, else the enrollment's page with what happened."""
        change_page = admin_url(self, "change", quote(enrollment.pk))
        device_name = form.cleaned_data["friendly_device_name"]
        try:
            verified = flows.verify_enrollment(
                flow_context(request),
                enrollment=enrollment,
                user_code=form.cleaned_data["user_code"],
                device_name=device_name or None,
            )
        except exc.InvalidCode as error:
            # The LogEntry names the outcome only: never the code that was typed.
            self.log_change(request, enrollment, gettext("Verification with a code failed."))
            remaining = error.attempts_remaining or 0
            self._tell_wrong_code(request, enrollment, remaining)
            if remaining <= 0:
                return HttpResponseRedirect(change_page)
            # The form again, empty, for the corrected code.
            retry = VerifyDeviceForm(initial={"friendly_device_name": device_name})
            return self._verify_page(request, enrollment, retry)
        except exc.CognitoMFAError as error:
            # Nothing changed (Cognito unreachable or throttling, the row busy or no longer
            # pending), but the help desk's history keeps that a code was tried.
            self.log_change(
                request,
                enrollment,
                gettext("Verification with a code did not complete (%(code)s).")
                % {"code": error.code},
            )
            self.message_user(
                request,
                gettext("%(name)s could not be verified: %(reason)s")
                % {
                    "name": capfirst(enrollment_name(enrollment)),
                    "reason": error_message(error.code),
                },
                messages.ERROR,
            )
            return HttpResponseRedirect(change_page)
        self.log_change(
            request,
            verified.enrollment,
            gettext("Verified the device with a code read out by the user."),
        )
        self._tell_verified(request, verified)
        return HttpResponseRedirect(change_page)

    def _verify_page(
        self, request: HttpRequest, enrollment: Enrollment, form: VerifyDeviceForm
    ) -> TemplateResponse:
        enrollment.refresh_from_db()  # the attempts a wrong code just counted
        valid_until: datetime = enrollment.expires_at
        if enrollment.credential_expires_at is not None:
            valid_until = min(valid_until, enrollment.credential_expires_at)
        return render_page(
            self,
            request,
            "verify_device.html",
            gettext("Verify device with code"),
            enrollment=enrollment,
            form=form,
            valid_until=valid_until,
            attempts_remaining=max(app_settings.MAX_ATTEMPTS - enrollment.attempts, 0),
        )

    def _tell_wrong_code(
        self, request: HttpRequest, enrollment: Enrollment, remaining: int
    ) -> None:
        name = enrollment_name(enrollment)
        if remaining <= 0:
            message = gettext(
                "The code for %(name)s was not accepted. Too many wrong codes: "
                "the enrollment is locked."
            ) % {"name": name}
        else:
            message = ngettext(
                "The code for %(name)s was not accepted. %(count)d attempt remains.",
                "The code for %(name)s was not accepted. %(count)d attempts remain.",
                remaining,
            ) % {"name": name, "count": remaining}
        self.message_user(request, message, messages.ERROR)

    def _tell_verified(self, request: HttpRequest, verified: flows.VerifiedEnrollment) -> None:
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
