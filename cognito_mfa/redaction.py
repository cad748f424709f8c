"""Log redaction: no token, Session, secret or code reaches a log record.

botocore logs whole request and response bodies at DEBUG; :func:`install_log_redaction`
puts :class:`RedactingFilter` on the AWS SDK's and urllib3's loggers. The Cognito boundary
installs it whenever it builds its client, whichever factory built it.
"""

from __future__ import annotations

import logging
import re

# Request/response fields that must never reach a log record.
SENSITIVE_FIELDS = (
    "AccessToken",
    "IdToken",
    "RefreshToken",
    "Session",
    "SecretCode",
    "UserCode",
    "SECRET_HASH",
    "PASSWORD",
    "NEW_PASSWORD",
    "SOFTWARE_TOKEN_MFA_CODE",
    "Password",
    "ClientSecret",
)
# Quotes may come escaped (``\"AccessToken\": \"...\"``) when JSON is logged inside a string.
_FIELD_PATTERN = re.compile(
    r"""(?P<key>(?:\\?["'])?(?:"""
    + "|".join(SENSITIVE_FIELDS)
    + r""")(?:\\?["'])?\s*[:=]\s*)(?P<quote>\\?["'])(?P<value>.*?)(?P=quote)"""
)
_JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Cognito's error messages may quote what it was sent (moto's "Invalid session" names the
# Session), so the ``message``/``Message`` of an error body is masked whole. The value runs to
# the quote that closes it (backslash escapes skipped), i.e. the one a ``,``/``}`` follows.
_MESSAGE_PATTERN = re.compile(
    r"""(?P<key>(?<!\w)(?:\\?["'])?[Mm]essage(?:\\?["'])?\s*[:=]\s*)(?P<quote>\\?["'])"""
    r"""(?P<value>(?:\\.|[^\\])*?)(?P=quote)(?=\s*[,}\]]|\s*$)""",
    re.DOTALL,
)


def redact(text: str) -> str:
    """Return ``text`` with every sensitive field value, every error message and anything
    JWT-shaped masked."""
    text = _FIELD_PATTERN.sub(r"\g<key>\g<quote>***\g<quote>", text)
    text = _MESSAGE_PATTERN.sub(r"\g<key>\g<quote>***\g<quote>", text)
    return _JWT_PATTERN.sub("***", text)


class RedactingFilter(logging.Filter):
    """Mask tokens, Sessions, secrets and codes in botocore/urllib3 debug records.

    botocore logs whole request and response bodies at DEBUG (``Making request ... with
    params``, ``Response body``); those bodies carry access tokens, Sessions, TOTP secrets
    and codes, and an error body's message can quote any of them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is dropped, not leaked
            return False
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


_redacting_filter = RedactingFilter()
_LOGGER_PREFIXES = ("botocore", "boto3", "urllib3", "s3transfer")


def install_log_redaction() -> None:
    """Attach the redacting filter to every AWS SDK / urllib3 logger that exists now.

    Logger filters only see records logged on that very logger, so each one gets it; the
    SDK's modules (and their loggers) exist once a client has been built.
    """
    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if name.split(".")[0] in _LOGGER_PREFIXES
    ]
    for name in [*_LOGGER_PREFIXES, *names]:
        target = logging.getLogger(name)
        if _redacting_filter not in target.filters:
            target.addFilter(_redacting_filter)
