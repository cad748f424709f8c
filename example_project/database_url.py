"""A PostgreSQL URL (``postgres://user:password@host:port/name``) as a ``DATABASES`` entry.

Shared by the settings that take their database from the environment: the test suite's, the
multi-process test servers' and the benchmark's.
"""

from typing import Any
from urllib.parse import urlsplit


def postgres_database(url: str, *, default_name: str = "", **extra: Any) -> dict[str, Any]:
    """Return the ``DATABASES["default"]`` of ``url``, with ``extra`` keys added."""
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or default_name,
        "USER": parts.username or "postgres",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        **extra,
    }
