"""URLs of the test server processes, plus a receiver that writes every signal to a file.

Loaded by each worker before its first request is handled, so no signal goes unrecorded.
"""

import json
import os
from typing import Any

from cognito_mfa import signals
from example_project.urls import urlpatterns  # noqa: F401
from tests.support.signals import SIGNAL_NAMES


def _record(name: str) -> Any:
    def receiver(sender: Any, **kwargs: Any) -> None:
        path = os.environ.get("CMFA_SERVER_SIGNAL_LOG")
        if not path:
            return
        enrollment = kwargs.get("enrollment")
        line = json.dumps(
            {
                "signal": name,
                "enrollment": str(enrollment.pk) if enrollment is not None else None,
                "pid": os.getpid(),
            }
        )
        # One short write with O_APPEND: lines from several processes never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    return receiver


_receivers = [_record(name) for name in SIGNAL_NAMES]
for _name, _receiver in zip(SIGNAL_NAMES, _receivers, strict=True):
    getattr(signals, _name).connect(_receiver, dispatch_uid=f"tests.record.{_name}")
