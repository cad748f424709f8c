"""Real server processes for the multi-process tests: a PostgreSQL database of their own,
gunicorn serving the app, and a counting proxy in front of the Cognito stand-in (moto)."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from tests.support.cognito import MOTO_SECRET, Pool, create_pool, moto_server_client, totp_code

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET_PREFIX = "AWSCognitoIdentityProviderService."


# --- the Cognito stand-in: moto behind a counting proxy -----------------------------------------


class CountingProxy:
    """Forward every request to moto and count Cognito operations by ``X-Amz-Target``.

    ``delays`` holds seconds to wait before forwarding an operation (to look inside the
    window while the app waits for Cognito); ``in_flight`` tells which calls are waiting.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.calls: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.delays: dict[str, float] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                target = self.headers.get("X-Amz-Target", "")
                operation = target.removeprefix(TARGET_PREFIX) if target else "(http)"
                with proxy._lock:
                    proxy.calls[operation] += 1
                    proxy.in_flight[operation] += 1
                try:
                    delay = proxy.delays.get(operation, 0.0)
                    if delay:
                        time.sleep(delay)
                    upstream = http.client.HTTPConnection(
                        proxy.upstream_host, proxy.upstream_port, timeout=30
                    )
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    payload = answer.read()
                    upstream.close()
                finally:
                    with proxy._lock:
                        proxy.in_flight[operation] -= 1
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CountingProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
        self.delays.clear()

    def count(self, operation: str) -> int:
        with self._lock:
            return self.calls[operation]

    def waiting(self, operation: str) -> int:
        with self._lock:
            return self.in_flight[operation]


# --- PostgreSQL --------------------------------------------------------------------------------


def database_url(base_url: str, name: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


@contextmanager
def temporary_database(base_url: str) -> Iterator[str]:
    """Create a database of our own on the server of ``base_url``; yield its URL; drop it."""
    import psycopg

    name = f"cmfa_conc_{secrets.token_hex(4)}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(base_url, name)
    finally:
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_environment(**values: str) -> dict[str, str]:
    """The environment of a server process: ours, the repository on the path, fake AWS keys."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DJANGO_", "CMFA_SERVER_"))
    }
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        DJANGO_SETTINGS_MODULE="tests.concurrency_settings",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    env.update(values)
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=120,
    )


# --- gunicorn ----------------------------------------------------------------------------------


@dataclass
class Gunicorn:
    """gunicorn serving the app on a socket bound here (port 0: no race for a free port)."""

    env: dict[str, str]
    workers: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    _socket: socket.socket | None = field(default=None, repr=False)

    def start(self) -> Gunicorn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.set_inheritable(True)
        self._socket = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "example_project.wsgi:application",
                "--bind",
                f"fd://{sock.fileno()}",
                "--workers",
                str(self.workers),
                "--worker-class",
                "sync",
                "--preload",
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                # No control socket: its default path is one per machine, shared by every
                # gunicorn running here at the same time.
                "--no-control-socket",
            ],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + self.log_path.read_text()[-3000:])
            try:
                # An anonymous status request: 401 proves a worker runs the app.
                if requests.get(self.url + "/api/mfa/status/", timeout=5).status_code == 401:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer:\n" + self.log_path.read_text()[-3000:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Quick shutdown: the tests are done with it, nothing is in flight.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._socket is not None:
            self._socket.close()


# --- firing requests together ------------------------------------------------------------------


@dataclass
class ServedSite:
    """The app served by gunicorn on a database of its own, Cognito behind a counting proxy."""

    url: str
    database_url: str
    proxy: CountingProxy
    pool: Pool


@contextmanager
def served_site(
    postgres_url: str, moto_server: str, workdir: Path, *, workers: int, **settings: str
) -> Iterator[ServedSite]:
    """A user pool on moto, the proxy before it, a fresh database migrated, gunicorn with
    ``workers`` sync workers; ``settings`` are more ``CMFA_SERVER_*`` variables."""
    pool = create_pool(moto_server_client(moto_server))
    proxy = CountingProxy(moto_server).start()
    try:
        with temporary_database(postgres_url) as database:
            env = server_environment(
                CMFA_SERVER_DATABASE_URL=database,
                CMFA_SERVER_ENDPOINT_URL=proxy.url,
                CMFA_SERVER_JWKS_URL=f"{moto_server}/{pool.pool_id}/.well-known/jwks.json",
                CMFA_SERVER_POOL_ID=pool.pool_id,
                CMFA_SERVER_CLIENT_ID=pool.client_id,
                **settings,
            )
            migrate(env)
            server = Gunicorn(env, workers=workers, log_path=workdir / "gunicorn.log")
            try:
                server.start()
                yield ServedSite(server.url, database, proxy, pool)
            finally:
                server.stop()
    finally:
        proxy.stop()


def fire_together(count: int, send: Callable[[int], requests.Response]) -> list[requests.Response]:
    """Run ``send(i)`` for ``count`` threads released at once by a barrier."""
    barrier = threading.Barrier(count)

    def run(index: int) -> requests.Response:
        barrier.wait(timeout=30)
        return send(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def code_with_margin(margin: float = 6.0) -> str:
    """A current TOTP code with at least ``margin`` seconds left in its 30-s step."""
    if time.time() % 30 > 30 - margin:
        time.sleep(30 - time.time() % 30 + 0.05)
    return totp_code(MOTO_SECRET)


def read_signal_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
