"""A local stand-in for the Cognito user pool API: canned answers, measured service time.

``ThreadingHTTPServer`` on 127.0.0.1 speaking the JSON 1.1 protocol botocore uses
(``X-Amz-Target: AWSCognitoIdentityProviderService.<Operation>``). Each operation may be given
a service time (a sleep) so the stub behaves like a remote service; the server records how
long it spent on each call and the most calls it had in flight at once.

Run ``python -m bench.stub`` to serve it from its own process (the throughput run does, so the
stub does not share a GIL with the load generator); ``GET /_stats`` returns its counters,
``POST /_reset`` clears them, ``POST /_service_time`` sets the service times (JSON object),
``POST /_quota`` turns Cognito's request rate quotas on (``{"UserResourceUpdate": 25, ...}``
calls per second per category, ``{}`` off): past a category's token bucket (one second's calls
at most) the stub answers ``TooManyRequestsException``, as Cognito does, and counts it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_CODE = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSW"  # Cognito-sized (52)
_EPOCH = 1_700_000_000.0

# Cognito's quotas per account and Region ("Quotas in Amazon Cognito"), what the storm enforces.
COGNITO_QUOTAS = {"UserResourceUpdate": 25.0, "UserRead": 120.0, "UserAuthentication": 120.0}
CATEGORY_OF = {
    "AssociateSoftwareToken": "UserResourceUpdate",
    "VerifySoftwareToken": "UserResourceUpdate",
    "SetUserMFAPreference": "UserResourceUpdate",
    "AdminSetUserMFAPreference": "UserResourceUpdate",
    "AdminDeleteSoftwareToken": "UserResourceUpdate",
    "GetUser": "UserRead",
    "AdminGetUser": "UserRead",
    "InitiateAuth": "UserAuthentication",
    "RespondToAuthChallenge": "UserAuthentication",
}


class Quotas:
    """A token bucket per category: ``rate`` tokens a second, at most ``rate`` held.

    ``clock`` is there for the tests: on the real clock a slow machine refills the bucket
    while a test is still emptying it.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.set({})

    def set(self, rates: dict[str, float]) -> None:
        with self.lock:
            self.rates = {name: float(rate) for name, rate in rates.items()}
            self.tokens = dict(self.rates)
            self.updated = self.clock()

    def take(self, operation: str) -> bool:
        """Spend a token of the operation's category; False when the bucket is empty."""
        category = CATEGORY_OF.get(operation)
        with self.lock:
            rate = self.rates.get(category or "")
            if not rate:
                return True
            now = self.clock()
            for name, value in self.rates.items():
                self.tokens[name] = min(value, self.tokens[name] + (now - self.updated) * value)
            self.updated = now
            if self.tokens[category or ""] < 1:
                return False
            self.tokens[category or ""] -= 1
            return True


def _answer(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    if operation == "GetUser":
        return {
            "Username": "bench-user",
            "UserAttributes": [{"Name": "sub", "Value": "00000000-0000-0000-0000-000000000000"}],
        }
    if operation == "AssociateSoftwareToken":
        return {"SecretCode": SECRET_CODE}
    if operation == "VerifySoftwareToken":
        return {"Status": "SUCCESS"}
    if operation in ("SetUserMFAPreference", "AdminSetUserMFAPreference"):
        return {}
    if operation == "AdminGetUser":
        return {
            "Username": request.get("Username", ""),
            "UserAttributes": [],
            "UserCreateDate": _EPOCH,
            "UserLastModifiedDate": _EPOCH,
            "Enabled": True,
            "UserStatus": "CONFIRMED",
            "UserMFASettingList": ["SOFTWARE_TOKEN_MFA"],
            "PreferredMfaSetting": "SOFTWARE_TOKEN_MFA",
        }
    raise KeyError(operation)


class Stats:
    """Per-operation counts and service times, and the peak number of calls in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.calls: dict[str, int] = {}
            self.throttled: dict[str, int] = {}
            self.service_ms: list[float] = []
            self.in_flight = 0
            self.peak_in_flight = 0

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def throttle(self, operation: str) -> None:
        with self.lock:
            self.throttled[operation] = self.throttled.get(operation, 0) + 1

    def leave(self, operation: str, elapsed_ms: float) -> None:
        with self.lock:
            self.in_flight -= 1
            self.calls[operation] = self.calls.get(operation, 0) + 1
            self.service_ms.append(elapsed_ms)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self.calls),
                "throttled": dict(self.throttled),
                "service_ms": list(self.service_ms),
                "peak_in_flight": self.peak_in_flight,
            }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    # Headers and body go out in two writes: with Nagle's algorithm on, the second waits for
    # the client's delayed ACK (~40 ms) and the stub would look like a slow Cognito.
    disable_nagle_algorithm = True
    server: CognitoStub

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/_stats":
            body = json.dumps(self.server.stats.snapshot()).encode()
            self._send(200, body, "application/json")
        else:
            self._send(404, b"{}", "application/json")

    def do_POST(self) -> None:
        started = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_reset":
            self.server.stats.reset()
            self._send(204, b"", "application/json")
            return
        if self.path == "/_service_time":
            self.server.service_time = json.loads(body)
            self._send(204, b"", "application/json")
            return
        if self.path == "/_quota":
            self.server.quotas.set(json.loads(body))
            self._send(204, b"", "application/json")
            return
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        self.server.stats.enter()
        try:
            if not self.server.quotas.take(operation):
                self.server.stats.throttle(operation)
                error = {"__type": "TooManyRequestsException", "message": "Rate exceeded"}
                self._send(400, json.dumps(error).encode(), "application/x-amz-json-1.1")
                return
            delay = self.server.service_time.get(operation, 0.0)
            if delay:
                time.sleep(delay)
            try:
                answer = _answer(operation, json.loads(body or b"{}"))
            except KeyError:
                error = {"__type": "InvalidParameterException", "message": operation}
                self._send(400, json.dumps(error).encode(), "application/x-amz-json-1.1")
                return
            self._send(200, json.dumps(answer).encode(), "application/x-amz-json-1.1")
        finally:
            self.server.stats.leave(operation, (time.perf_counter() - started) * 1000)


class CognitoStub(ThreadingHTTPServer):
    """The stub server; ``service_time`` maps an operation to seconds spent on each call."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, service_time: dict[str, float] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.service_time = dict(service_time or {})
        self.stats = Stats()
        self.quotas = Quotas()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> CognitoStub:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def main() -> None:
    """Serve the stub; print its URL on the first line of stdout; stop when stdin closes."""
    service_time = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    stub = CognitoStub(service_time).start()
    print(stub.url, flush=True)
    sys.stdin.read()
    stub.stop()


if __name__ == "__main__":
    main()
