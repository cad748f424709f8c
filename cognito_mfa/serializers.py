"""Request and response shapes of the REST API."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .models import Enrollment
from .validators import validate_device_name

# Exactly six ASCII digits: ``\d`` would also match Arabic-Indic or full-width digits.
USER_CODE_PATTERN = re.compile(r"[0-9]{6}")


class UserCodeField(serializers.Field):
    """A 6-digit code as a JSON string; no numbers, no spaces, no non-ASCII digits."""

    default_error_messages = {
        "invalid": _("Enter the 6-digit code from your authenticator app."),
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not USER_CODE_PATTERN.fullmatch(data):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> str:
        return str(value)


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's CharField would turn 42 or true into text."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class DeviceNameField(StrictCharField):
    """An optional device name shown in the user's Cognito MFA settings."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", 128)
        kwargs.setdefault("trim_whitespace", True)
        super().__init__(**kwargs)
        # The admin's verify form uses the same rule.
        self.validators.append(validate_device_name)


class CognitoUsernameField(StrictCharField):
    """A Cognito username: 1-128 letters, marks, symbols, numbers or punctuation.

    Cognito's own pattern is ``[\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+``: no spaces, no control or
    format characters (a NUL byte would not even fit in a PostgreSQL text column).
    """

    default_error_messages = {"invalid": _("Not a valid Cognito username.")}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 128)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if any(unicodedata.category(char)[0] in "CZ" for char in value):
            self.fail("invalid")
        return value


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true``/``false`` only."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StartEnrollmentSerializer(serializers.Serializer):
    friendly_device_name = DeviceNameField()


class VerifyEnrollmentSerializer(serializers.Serializer):
    user_code = UserCodeField()
    friendly_device_name = DeviceNameField()


class PreferenceSerializer(serializers.Serializer):
    enabled = StrictBooleanField()
    preferred = StrictBooleanField()


class ChallengeStartSerializer(serializers.Serializer):
    username = CognitoUsernameField()
    # Cognito's own bounds: anything outside them is the caller's error (400), not a failed
    # call to Cognito (botocore refuses it before sending and the app would answer 502).
    session = StrictCharField(min_length=20, max_length=4096)
    friendly_device_name = DeviceNameField()


class ChallengeVerifySerializer(serializers.Serializer):
    # Optional and possibly empty here, so a missing or empty token answers 404 like a wrong
    # one (the view looks it up).
    challenge_token = StrictCharField(max_length=128, required=False, default="", allow_blank=True)
    user_code = UserCodeField()
    friendly_device_name = DeviceNameField()


# --- responses --------------------------------------------------------------------------------


class EnrollmentSerializer(serializers.ModelSerializer):
    """An enrollment without anything secret."""

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "status",
            "flow",
            "friendly_device_name",
            "attempts",
            "created_at",
            "expires_at",
            "verified_at",
        ]
        read_only_fields = fields


class StartedEnrollmentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    secret_code = serializers.CharField()
    otpauth_uri = serializers.CharField()
    qr_code_svg = serializers.CharField()
    qr_code_png = serializers.CharField()
    expires_at = serializers.DateTimeField()
    friendly_device_name = serializers.CharField(allow_blank=True)


class ChallengeStartedEnrollmentSerializer(StartedEnrollmentSerializer):
    challenge_token = serializers.CharField()


class PendingEnrollmentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    expires_at = serializers.DateTimeField()


class StatusSerializer(serializers.Serializer):
    software_token_mfa_enabled = serializers.BooleanField()
    preferred_mfa = serializers.CharField(allow_null=True)
    pending_enrollment = PendingEnrollmentSerializer(allow_null=True)


class VerifiedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    mfa_enabled = serializers.BooleanField()
    preferred = serializers.BooleanField()


class ChallengeVerifiedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    session = serializers.CharField(allow_null=True)
    authentication_result = serializers.DictField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    """``{"code", "detail", "fields"?, "attempts_remaining"?, "reset_required"?}`` (for the
    OpenAPI schema)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # "fields" cannot be a class attribute: it would shadow Serializer.fields.
        return {
            "code": serializers.CharField(),
            "detail": serializers.CharField(),
            "fields": serializers.DictField(required=False),
            "attempts_remaining": serializers.IntegerField(required=False, allow_null=True),
            "reset_required": serializers.BooleanField(required=False),
        }
