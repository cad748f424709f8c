"""The flows' clock: one seam, so a test can move time for every use case at once.

The flows call ``clock.now()`` through this module (never ``from .clock import now``), so
``monkeypatch.setattr(clock, "now", ...)`` reaches each of them.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """The app's clock (one seam for tests)."""
    return timezone.now()
