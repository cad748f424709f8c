"""A bounded loopback load: simulated SPA users doing start -> verify over keep-alive HTTP.

Fixed users, fixed concurrency, hard time limit; every request's latency is recorded.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.stats import summary

PATHS = {
    "app": ("/api/mfa/enrollments/", "/api/mfa/enrollments/{id}/verify/"),
    "baseline": ("/baseline/enrollments/", "/baseline/enrollments/{id}/verify/"),
}


@dataclass
class Round:
    kind: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    timed_out: bool = False

    def result(self) -> dict[str, Any]:
        ok = len(self.latencies_ms)
        return {
            "kind": self.kind,
            "requests": ok,
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
            "elapsed_s": round(self.elapsed_s, 3),
            "requests_per_s": round(ok / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "latency_ms": summary(self.latencies_ms),
            "timed_out": self.timed_out,
        }


class _Session:
    """One simulated browser: a keep-alive connection, reopened if the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.connection: http.client.HTTPConnection | None = None

    def post(self, path: str, token: str, body: dict[str, Any]) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.connection.request("POST", path, payload, headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def run_round(
    host: str,
    port: int,
    kind: str,
    tokens: list[str],
    *,
    concurrency: int,
    time_limit_s: float,
) -> dict[str, Any]:
    """Let ``concurrency`` users at a time each do start -> verify, one per token."""
    start_path, verify_path = PATHS[kind]
    work: queue.Queue[str] = queue.Queue()
    for token in tokens:
        work.put(token)
    outcome = Round(kind)
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit_s

    def user_loop() -> None:
        session = _Session(host, port)
        try:
            while time.monotonic() < deadline:
                try:
                    token = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    began = time.perf_counter()
                    status, body = session.post(start_path, token, {"friendly_device_name": "x"})
                    started_ms = (time.perf_counter() - began) * 1000
                    if status != 201:
                        raise RuntimeError(f"start {status}: {body[:120]!r}")
                    enrollment_id = json.loads(body)["id"]
                    began = time.perf_counter()
                    path = verify_path.format(id=enrollment_id)
                    status, body = session.post(path, token, {"user_code": "123456"})
                    verified_ms = (time.perf_counter() - began) * 1000
                    if status != 200:
                        raise RuntimeError(f"verify {status}: {body[:120]!r}")
                    with lock:
                        outcome.latencies_ms += [started_ms, verified_ms]
                except Exception as error:  # counted, reported, never fatal to the round
                    with lock:
                        outcome.errors.append(f"{type(error).__name__}: {error}")
        finally:
            session.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=user_loop) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=time_limit_s + 35)
    outcome.elapsed_s = time.perf_counter() - began
    outcome.timed_out = not work.empty()
    return outcome.result()
