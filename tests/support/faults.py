"""Fault injection at botocore's ``before-send``: the client's real retry path still runs."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

EVENT = "before-send.cognito-identity-provider"

# What a send can meet: pass to Cognito (None), or one of these faults.
CONNECT_TIMEOUT = "connect_timeout"
READ_TIMEOUT = "read_timeout"
THROTTLED = "throttled"  # HTTP 400 TooManyRequestsException
SERVER_ERROR = "server_error"  # HTTP 500 InternalErrorException


class _Body:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.payload


def error_response(url: str, status: int, error_type: str) -> AWSResponse:
    body = json.dumps({"__type": error_type, "message": "injected"}).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "Content-Length": str(len(body)),
        "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000",
    }
    return AWSResponse(url, status, headers, _Body(body))


class Faults:
    """Planned outcomes per operation, consumed one per send; every send is counted."""

    def __init__(self) -> None:
        self.sends: Counter[str] = Counter()
        self.plans: dict[str, list[str | None]] = {}
        self.always: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def plan(self, operation: str, *outcomes: str | None, then: str | None = None) -> None:
        """Meet ``outcomes`` on the next sends of ``operation``, then ``then`` on every other."""
        self.plans[operation] = list(outcomes)
        self.always[operation] = then

    def clear(self) -> None:
        self.plans.clear()
        self.always.clear()

    def __call__(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.sends[operation] += 1
            planned = self.plans.get(operation)
            outcome = planned.pop(0) if planned else self.always.get(operation)
        if outcome == CONNECT_TIMEOUT:
            raise ConnectTimeoutError(endpoint_url=request.url)
        if outcome == READ_TIMEOUT:
            raise ReadTimeoutError(endpoint_url=request.url)
        if outcome == THROTTLED:
            return error_response(request.url, 400, "TooManyRequestsException")
        if outcome == SERVER_ERROR:
            return error_response(request.url, 500, "InternalErrorException")
        return None  # on to Cognito
