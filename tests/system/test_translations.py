"""The German and French catalogues: complete, compiled, and used by the API and the admin.

A host turns translation on with Django's ``LocaleMiddleware`` (the example project does);
the ``code`` of an error never changes with the language, only its ``detail``.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.translation import deactivate, gettext, ngettext, npgettext, override, pgettext
from rest_framework.test import APIClient

from cognito_mfa.models import Enrollment
from tests.support.admin import (
    change_url,
    changelist_url,
    confirm_action,
    make_staff,
    messages_of,
    run_action,
    verify_url,
)
from tests.support.cognito import Pool, wrong_code
from tests.support.services import require_service

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "cognito_mfa"
LANGUAGES = ("de", "fr")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@pytest.fixture(autouse=True)
def _language_of_the_process() -> Iterator[None]:
    """LocaleMiddleware activates each request's language and leaves it active in the thread
    (the next request activates its own): give the tests after these the default back."""
    yield
    deactivate()


def _gettext_tools_available() -> bool:
    return all(shutil.which(tool) for tool in ("xgettext", "msgfmt", "msgen"))


def _catalogue(mo_file: Path) -> dict[str, str]:
    """Read a compiled catalogue (GNU .mo format): msgid -> msgstr, plural forms joined by NUL
    as the format keeps them, the header left out."""
    data = mo_file.read_bytes()
    order = "<" if struct.unpack("<I", data[:4])[0] == 0x950412DE else ">"
    count, originals, translations = struct.unpack(f"{order}4x4xIII", data[:20])

    def string(table: int, index: int) -> str:
        length, offset = struct.unpack(
            f"{order}II", data[table + 8 * index : table + 8 * index + 8]
        )
        return data[offset : offset + length].decode()

    catalogue = {string(originals, i): string(translations, i) for i in range(count)}
    catalogue.pop("", None)
    return catalogue


def _compile(po_file: Path, mo_file: Path) -> dict[str, str]:
    subprocess.run(["msgfmt", "--check", "-o", str(mo_file), str(po_file)], check=True)
    return _catalogue(mo_file)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every marked string of the app as makemessages finds it today, in a copy of the app
    (msgid -> msgid, so that it compiles)."""
    require_service("gettext", _gettext_tools_available(), "apt-get install gettext")
    copy = tmp_path_factory.mktemp("app") / "cognito_mfa"
    shutil.copytree(APP, copy, ignore=shutil.ignore_patterns("locale", "__pycache__"))
    (copy / "locale").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "de", "--no-location"],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh = copy / "locale" / "de" / "LC_MESSAGES" / "django.po"
    filled = fresh.with_name("filled.po")
    subprocess.run(["msgen", "-o", str(filled), str(fresh)], check=True)
    return _compile(filled, fresh.with_suffix(".mo"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_marked_string_is_translated(extracted: dict[str, str], language: str) -> None:
    shipped = _catalogue(APP / "locale" / language / "LC_MESSAGES" / "django.mo")
    missing = sorted(set(extracted) - set(shipped))
    assert not missing, f"marked but not in the {language} catalogue: {missing}"
    stale = sorted(set(shipped) - set(extracted))
    assert not stale, f"in the {language} catalogue but no longer marked: {stale}"
    for msgid, translation in shipped.items():
        forms = translation.split("\0")
        assert all(form.strip() for form in forms), msgid
        english = set(PLACEHOLDER.findall(msgid))
        if "\0" in msgid:
            # Plural forms: a singular may leave the count out, none may add a placeholder.
            assert len(forms) == 2, msgid
            assert all(set(PLACEHOLDER.findall(form)) <= english for form in forms), msgid
        else:
            assert set(PLACEHOLDER.findall(translation)) == english, msgid


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_app_listed_before_ours_replaces_one_of_our_translations(language: str) -> None:
    """Django looks a msgid up in the catalogues of INSTALLED_APPS in order, so the admin's or
    DRF's translation of the same English (both come first in a site's list, as in the docs)
    is the one shown. Each of the app's strings must come out as the app translated it."""
    shipped = _catalogue(APP / "locale" / language / "LC_MESSAGES" / "django.mo")
    replaced = {}
    with override(language):
        for key, translated in shipped.items():
            context, _, msgid = key.rpartition("\x04")
            if "\0" in msgid:
                singular, plural = msgid.split("\0")
                forms = translated.split("\0")
                shown = (
                    npgettext(context, singular, plural, 1)
                    if context
                    else ngettext(singular, plural, 1)
                )
                expected = forms[0]
            else:
                shown = pgettext(context, msgid) if context else gettext(msgid)
                expected = translated
            if shown != expected:
                replaced[key] = shown
    assert not replaced, f"{language}: another app's translation is shown instead: {replaced}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_shipped_mo_files_are_compiled_from_the_po_files(tmp_path: Path, language: str) -> None:
    require_service("gettext", _gettext_tools_available(), "apt-get install gettext")
    folder = APP / "locale" / language / "LC_MESSAGES"
    assert _compile(folder / "django.po", tmp_path / "django.mo") == _catalogue(
        folder / "django.mo"
    )


# --- the API --------------------------------------------------------------------------------------

DETAILS = {
    "not_authenticated": {
        "de": "Ein Cognito-Zugriffstoken ist erforderlich.",
        "fr": "Un jeton d'accès Cognito est requis.",
        "en": "A Cognito access token is required.",
    },
    "token_invalid": {
        "de": "Das Zugriffstoken ist ungültig.",
        "fr": "Le jeton d'accès n'est pas valide.",
        "en": "The access token is not valid.",
    },
    "method_not_allowed": {
        "de": "Diese Methode ist hier nicht erlaubt.",
        "fr": "Cette méthode n'est pas autorisée ici.",
        "en": "This method is not allowed here.",
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize("language", [*LANGUAGES, "en"])
def test_error_details_follow_accept_language_and_codes_do_not(language: str) -> None:
    client = APIClient(HTTP_ACCEPT_LANGUAGE=language)
    anonymous = client.get("/api/mfa/status/")
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "code": "not_authenticated",
        "detail": DETAILS["not_authenticated"][language],
    }
    assert anonymous["Content-Language"] == language
    bad_token = client.get("/api/mfa/status/", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert bad_token.json() == {
        "code": "token_invalid",
        "detail": DETAILS["token_invalid"][language],
    }
    wrong_method = APIClient(HTTP_ACCEPT_LANGUAGE=language).put("/api/mfa/challenge/enrollments/")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {
        "code": "method_not_allowed",
        "detail": DETAILS["method_not_allowed"][language],
    }


WRONG_CODE = {
    "de": "Der Code wurde nicht angenommen. Prüfen Sie die Authenticator-App und versuchen Sie "
    "es erneut.",
    "fr": "Le code n'a pas été accepté. Vérifiez l'application d'authentification et réessayez.",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("language", LANGUAGES)
def test_a_wrong_code_is_explained_in_the_users_language(pool: Pool, language: str) -> None:
    """The detail raised deep in a flow (a lazy text) is rendered in the request's language."""
    pool.create_user("lena")
    client = APIClient(HTTP_ACCEPT_LANGUAGE=language)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pool.access_token('lena')}")
    started = client.post("/api/mfa/enrollments/", {}, format="json")
    assert started.status_code == 201, started.content
    answer = client.post(
        f"/api/mfa/enrollments/{started.json()['id']}/verify/",
        {"user_code": wrong_code()},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "code": "invalid_code",
        "detail": WRONG_CODE[language],
        "attempts_remaining": 4,
    }
    # The same request in English right after: nothing of the language sticks to the process.
    english = APIClient(HTTP_ACCEPT_LANGUAGE="en").get("/api/mfa/status/")
    assert english.json()["detail"] == DETAILS["not_authenticated"]["en"]


# --- the admin ------------------------------------------------------------------------------------

ACTIONS = {
    "de": {
        "verify_device": "Gerät mit Code bestätigen",
        "cancel_enrollments": "Ausgewählte offene Registrierungen abbrechen",
        "reset_totp": "TOTP der ausgewählten Benutzer zurücksetzen",
        "refresh_mfa_state": "MFA-Status aus Cognito neu laden",
    },
    "fr": {
        "verify_device": "Vérifier l'appareil avec un code",
        "cancel_enrollments": "Annuler les enregistrements en attente sélectionnés",
        "reset_totp": "Réinitialiser le TOTP des utilisateurs sélectionnés",
        "refresh_mfa_state": "Actualiser l'état MFA depuis Cognito",
    },
}
CANCEL_PAGE = {
    "de": {"no": ">Nein, zurück</a>", "expires": r"— läuft am \d+\. \w+ \d{4} [^<]+ ab</li>"},
    "fr": {
        "no": ">Non, revenir en arrière</a>",
        "expires": r"— expire le \d+ \w+ \d{4} [^<]+</li>",
    },
}
SOURCES = {"de": ("REST-API", "Administration"), "fr": ("API REST", "administration")}
CANCELLED = {"de": "1 Registrierung abgebrochen.", "fr": "1 enregistrement annulé."}
MISSING = {
    "de": "Keine Registrierung hat die ID „{key}“. Wurde sie vielleicht gelöscht?",
    "fr": "Aucun enregistrement n'a l'identifiant « {key} ». Il a peut-être été supprimé.",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("language", LANGUAGES)
def test_admin_actions_columns_and_messages_are_translated(pool: Pool, language: str) -> None:
    from django.utils.html import escape

    pool.create_user("mila")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {pool.access_token('mila')}")
    started = api.post("/api/mfa/enrollments/", {}, format="json")
    assert started.status_code == 201, started.content
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(make_staff(f"helpdesk-{language}"))
    page = client.get(changelist_url()).content.decode()
    for action, label in ACTIONS[language].items():
        # The action's name (what a form posts) stays; its label is translated.
        assert f'<option value="{action}">{escape(label)}</option>' in page, action
    for column in {"de": ("Cognito-Benutzername", "Status"), "fr": ("Nom d", "Statut")}[language]:
        assert column in page, column

    # The verify page: linked from the enrollment's page, and its answers translated.
    change_page = client.get(change_url(started.json()["id"])).content.decode()
    # (A template's {% translate %} is not escaped, a form's option label is.)
    assert f'verify-link">{ACTIONS[language]["verify_device"]}</a>' in change_page
    missing = "00000000-0000-4000-8000-000000000000"
    assert MISSING[language].format(key=missing) in messages_of(client.get(verify_url(missing)))

    # The cancel's confirmation page: the app's own "no" (Django's admin translates the same
    # English as a "cancel", next to our "yes, cancel") and the expiry in one sentence.
    confirmation = run_action(client, "cancel_enrollments", [started.json()["id"]]).content.decode()
    assert CANCEL_PAGE[language]["no"] in confirmation
    assert re.search(CANCEL_PAGE[language]["expires"], confirmation), confirmation

    cancelled = confirm_action(client, "cancel_enrollments", [started.json()["id"]])
    assert CANCELLED[language] in messages_of(cancelled)
    assert Enrollment.objects.get(pk=started.json()["id"]).status == "cancelled"

    # The audit trail names where each act came from in the help desk's language, as its
    # filter does; the user's start came through the REST API, the cancel from the admin.
    trail = client.get(reverse("admin:cognito_mfa_auditevent_changelist")).content.decode()
    for source in SOURCES[language]:
        assert f'<td class="field-source_shown">{source}</td>' in trail, source
