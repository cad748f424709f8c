"""A bounded loopback load: simulated SPA users doing start -> verify over keep-alive HTTP.

A fixed number of users is in flight at all times, each looping start -> verify with its own
tokens. Requests are counted in a steady-state window: those completed after a warm-up
(threads started, connections opened) and before the window closes. A round of fixed work
(N users, then stop) would also measure its ramp-up and its tail, the last few users
finishing alone, which moved a side's requests/s by up to a third from round to round.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable
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
    window_s: float
    latencies_ms: list[float] = field(default_factory=list)  # completed inside the window
    errors: list[str] = field(default_factory=list)
    timed_out: bool = False
    samples: tuple[Any, Any] | None = None

    def result(self) -> dict[str, Any]:
        ok = len(self.latencies_ms)
        return {
            "kind": self.kind,
            "requests": ok,
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
            "window_s": self.window_s,
            "requests_per_s": round(ok / self.window_s, 1),
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
    window_s: float,
    warmup_s: float = 0.5,
    sample: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Keep ``concurrency`` users doing start -> verify for ``warmup_s + window_s``.

    User ``i`` takes tokens ``i, i + concurrency, ...`` in turn, so no two users in flight
    share an account. ``sample()`` (CPU counters, say) is called as the window opens and
    closes; the pair is returned under ``"samples"``.
    """
    if len(tokens) < concurrency:
        raise ValueError("every user in flight needs a token of its own")
    start_path, verify_path = PATHS[kind]
    outcome = Round(kind, window_s)
    lock = threading.Lock()
    began = time.monotonic()
    window_opens, window_closes = began + warmup_s, began + warmup_s + window_s

    def counted(finished: float) -> bool:
        return window_opens <= finished <= window_closes

    def user_loop(own_tokens: list[str]) -> None:
        session = _Session(host, port)
        try:
            for token in itertools.cycle(own_tokens):
                if time.monotonic() >= window_closes:
                    return
                try:
                    sent = time.perf_counter()
                    status, body = session.post(start_path, token, {"friendly_device_name": "x"})
                    started_ms = (time.perf_counter() - sent) * 1000
                    started_at = time.monotonic()
                    if status != 201:
                        raise RuntimeError(f"start {status}: {body[:120]!r}")
                    enrollment_id = json.loads(body)["id"]
                    sent = time.perf_counter()
                    path = verify_path.format(id=enrollment_id)
                    status, body = session.post(path, token, {"user_code": "123456"})
                    verified_ms = (time.perf_counter() - sent) * 1000
                    verified_at = time.monotonic()
                    if status != 200:
                        raise RuntimeError(f"verify {status}: {body[:120]!r}")
                    with lock:
                        if counted(started_at):
                            outcome.latencies_ms.append(started_ms)
                        if counted(verified_at):
                            outcome.latencies_ms.append(verified_ms)
                except Exception as error:  # counted, reported, never fatal to the round
                    with lock:
                        outcome.errors.append(f"{type(error).__name__}: {error}")
                    time.sleep(0.05)  # a server that refuses at once must not be hammered
        finally:
            session.close()

    threads = [
        threading.Thread(target=user_loop, args=(tokens[index::concurrency],))
        for index in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    if sample is not None:
        time.sleep(max(0.0, window_opens - time.monotonic()))
        first = sample()
        time.sleep(max(0.0, window_closes - time.monotonic()))
        outcome.samples = (first, sample())
    # After the window each user finishes the cycle it is in: two requests of 30 s at most.
    deadline = window_closes + 65
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    outcome.timed_out = any(thread.is_alive() for thread in threads)
    result = outcome.result()
    result["samples"] = outcome.samples
    return result
