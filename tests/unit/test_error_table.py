"""The one table of error texts (cognito_mfa.exceptions.ERROR_TEXTS) and the statuses on the
exception classes: every reader (the API, the help desk, the OpenAPI schema) reads them."""

from __future__ import annotations

import pytest
from django.utils import translation

from cognito_mfa import admin, schema
from cognito_mfa import exceptions as exc


def _error_classes() -> list[type[exc.CognitoMFAError]]:
    found, pending = [], [exc.CognitoMFAError]
    while pending:
        error_class = pending.pop()
        found.append(error_class)
        pending.extend(error_class.__subclasses__())
    return [c for c in found if c.__module__ == exc.__name__]


def test_every_code_has_words_and_one_status() -> None:
    statuses: dict[str, set[int]] = {}
    for error_class in _error_classes():
        assert error_class.code in exc.ERROR_TEXTS, error_class
        statuses.setdefault(error_class.code, set()).add(error_class.status)
    assert {code: len(found) for code, found in statuses.items()} == dict.fromkeys(statuses, 1)
    assert set(statuses) == set(exc.ERROR_TEXTS)


def test_a_class_says_its_codes_words_unless_it_names_a_narrower_cause() -> None:
    assert exc.EnrollmentLocked.default_detail is exc.ERROR_TEXTS["enrollment_locked"].detail
    assert exc.MethodNotAllowed().as_dict() == {
        "code": "method_not_allowed",
        "detail": "This method is not allowed here.",
    }
    assert str(exc.CredentialRejected.default_detail) != str(
        exc.ERROR_TEXTS["token_invalid"].detail
    )
    # CallBudgetExhausted narrows Throttled: it keeps its own words, not the code's.
    assert str(exc.CallBudgetExhausted.default_detail).startswith("Many people")


def test_the_schema_documents_every_api_code_with_the_classes_status() -> None:
    documented = {code for code, texts in exc.ERROR_TEXTS.items() if texts.when}
    assert set(schema.ERRORS) == documented == set(exc.ERROR_TEXTS) - {"error"}
    assert schema.ERRORS["enrollment_expired"][0] == exc.EnrollmentExpired.status == 410
    assert schema.ERRORS["unsupported_media_type"][0] == 415
    with pytest.raises(KeyError):
        exc.error_status("no_such_code")


HELP_DESK_CODES = [code for code, texts in exc.ERROR_TEXTS.items() if texts.help_desk]


@pytest.mark.parametrize("language", ["en", "de", "fr"])
@pytest.mark.parametrize("code", ["enrollment_locked", "cognito_error", "no_such_code"])
def test_the_admin_says_the_help_desk_words_of_the_table(code: str, language: str) -> None:
    with translation.override(language):
        assert admin.common.error_message(code) == exc.help_desk_message(code)
        if code == "no_such_code":
            assert "no_such_code" in admin.common.error_message(code)


@pytest.mark.parametrize("language", ["de", "fr"])
@pytest.mark.parametrize("code", HELP_DESK_CODES)
def test_every_help_desk_message_is_translated(code: str, language: str) -> None:
    english = str(exc.ERROR_TEXTS[code].help_desk)
    with translation.override(language):
        assert exc.help_desk_message(code) not in ("", english)


def test_help_desk_messages_are_translated() -> None:
    with translation.override("de"):
        german = exc.help_desk_message("enrollment_locked")
    assert german != "Too many wrong codes: the enrollment is locked."
    assert german
