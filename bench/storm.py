"""The enrollment storm: the day MFA becomes required, at 4x what Cognito's quota allows.

Simulated users arrive at a steady rate over a bounded window, each with its own access token,
each sent to one of the two server processes in turn. A user starts an enrollment, waits a few
seconds as if scanning the QR code, then verifies with the right code (TOTP of the key the
start returned), honouring ``Retry-After`` on 429 and 503 for both steps, and gives up a fixed
time after the window closed. The stub Cognito enforces the account's quotas.

Reported: completed enrollments per second in the window against what the quota allows (the
stub's UserResourceUpdate rate / 3), the stub's TooManyRequestsException answers, users who
were admitted, sent the right code and never got verified (stranded), and how long a request
refused for the call budget took to answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.stats import summary

STORM_QUOTA_MULTIPLE = 4.0  # users arrive at this multiple of the enrollments the quota allows
STORM_WINDOW_S = 40.0
STORM_SCAN_S = 3.0  # between the start's answer and the verify
STORM_GIVE_UP_S = 30.0  # after the window, users not yet started give up
STORM_FINISH_S = 60.0  # a started user keeps trying to verify this long after the start
STORM_CALLS_PER_ENROLLMENT = 3  # associate, verify, set preference
# Before the storm, one enrollment per server thread: the storm then meets running servers
# (each thread connected to PostgreSQL and Redis, every module of the verify path imported),
# as it does on a live site. A server's first requests are the cold path's, measured apart.
STORM_WARMUP_SETTLE_S = 2.0  # the call budget's bucket (one second of calls) drains meanwhile


def totp(secret: str, at: float | None = None) -> str:
    """RFC 6238 (SHA-1, 30 s, 6 digits), what an authenticator app shows."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


@dataclass
class User:
    token: str
    port: int
    arrives_at: float
    started_at: float | None = None  # start answered 201
    verified_at: float | None = None  # verify answered 200
    mfa_enabled: bool | None = None
    sent_code: bool = False
    refusals: int = 0  # 429 throttled from the call budget
    unavailable: int = 0  # 503 cognito_unavailable
    other: list[str] = field(default_factory=list)


@dataclass
class Storm:
    ports: list[int]
    tokens: list[str]
    arrivals_per_s: float
    window_s: float
    give_up_at: float = 0.0
    refusal_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _post(self, path: str, user: User, body: Any) -> tuple[int, dict[str, Any], float, float]:
        """POST on a new connection (a user waits seconds between requests, longer than a
        server keeps a connection open); return status, JSON body, Retry-After (s) and the
        answer's time in ms, connecting included."""
        headers = {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}
        connection = http.client.HTTPConnection("127.0.0.1", user.port, timeout=60)
        try:
            began = time.perf_counter()
            connection.request("POST", path, json.dumps(body).encode(), headers)
            response = connection.getresponse()
            raw = response.read()
            elapsed_ms = (time.perf_counter() - began) * 1000
        finally:
            connection.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {"raw": raw[:200].decode(errors="replace")}
        retry_after = float(response.getheader("Retry-After") or 1)
        return response.status, answer, retry_after, elapsed_ms

    def _until_answered(
        self, path: str, user: User, deadline: float, secret: str | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        """Send until an answer that is not 429/503, honouring Retry-After; None past the
        deadline. With ``secret`` the body is the code, read off the authenticator at each
        send (right, and current)."""
        while time.monotonic() < deadline:
            body = {}
            if secret is not None:
                user.sent_code = True
                body = {"user_code": totp(secret)}
            status, answer, retry_after, elapsed_ms = self._post(path, user, body)
            # 429 throttled is the call budget's: the bench's per-user throttles never bite.
            # (Its detail is a translated text, which this process, without Django settings,
            # cannot compare.)
            if status == 429 and answer.get("code") == "throttled":
                user.refusals += 1
                with self.lock:
                    self.refusal_ms.append(elapsed_ms)
            elif status == 503:
                user.unavailable += 1
            else:
                return status, answer
            time.sleep(retry_after)
        return None

    def run_user(self, user: User) -> None:
        try:
            started = self._until_answered("/api/mfa/enrollments/", user, self.give_up_at)
            if started is None:
                return
            status, answer = started
            if status != 201:
                user.other.append(f"start {status} {answer.get('code')}")
                return
            user.started_at = time.monotonic()
            time.sleep(STORM_SCAN_S)
            path = f"/api/mfa/enrollments/{answer['id']}/verify/"
            secret = answer["secret_code"]
            deadline = user.started_at + STORM_FINISH_S
            verified = self._until_answered(path, user, deadline, secret)
            if verified is None:
                return
            status, body = verified
            if status == 200:
                user.verified_at, user.mfa_enabled = time.monotonic(), body.get("mfa_enabled")
            else:
                user.other.append(f"verify {status} {body.get('code')}")
        except (OSError, http.client.HTTPException) as error:
            user.other.append(type(error).__name__)

    def run(self) -> dict[str, Any]:
        began = time.monotonic() + 0.5
        users = [
            User(token, self.ports[index % len(self.ports)], began + index / self.arrivals_per_s)
            for index, token in enumerate(self.tokens)
        ]
        window_end = began + self.window_s
        self.give_up_at = window_end + STORM_GIVE_UP_S
        threads = []
        for user in users:
            time.sleep(max(0.0, user.arrives_at - time.monotonic()))
            thread = threading.Thread(target=self.run_user, args=(user,), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(timeout=max(1.0, self.give_up_at + STORM_FINISH_S + 60 - time.monotonic()))
        in_window = [u for u in users if u.verified_at is not None and u.verified_at <= window_end]
        stranded = [u for u in users if u.started_at and u.sent_code and u.verified_at is None]
        errors = [entry for user in users for entry in user.other]
        return {
            "users": len(users),
            "arrivals_per_s": round(self.arrivals_per_s, 2),
            "window_s": self.window_s,
            "completed_in_window": len(in_window),
            "completed_per_s": round(len(in_window) / self.window_s, 3),
            "completed_total": sum(1 for u in users if u.verified_at is not None),
            "completed_without_preference": sum(1 for u in users if u.mfa_enabled is False),
            "started": sum(1 for u in users if u.started_at is not None),
            "stranded_users": len(stranded),
            "budget_refusals": sum(u.refusals for u in users),
            "unavailable_answers": sum(u.unavailable for u in users),
            "refusal_ms": summary(self.refusal_ms) if self.refusal_ms else None,
            "verify_wait_s": summary(
                [u.verified_at - u.started_at for u in users if u.verified_at and u.started_at]
            )
            if any(u.verified_at for u in users)
            else None,
            "errors": len(errors),
            "first_errors": errors[:5],
        }


def warm_up(ports: list[int], tokens: list[str]) -> dict[str, Any]:
    """Enroll the ``tokens``' users, about one per server thread, before the storm is timed."""
    result = Storm(ports, tokens, arrivals_per_s=float(len(tokens)), window_s=1.0).run()
    time.sleep(STORM_WARMUP_SETTLE_S)
    return {key: result[key] for key in ("users", "completed_total", "errors", "first_errors")}
