"""Every signal the app sends, and the log that records them."""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from cognito_mfa import signals

# Every signal the app sends, by name: the receivers that record them all (the in-process
# signal log, the test servers' file) connect to each.
SIGNAL_NAMES = tuple(name for name, value in vars(signals).items() if isinstance(value, Signal))


class SignalLog:
    """The signals sent during a test, in order, with their kwargs (the ``signal_log`` fixture)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for event, kwargs in self.events if event == name]
