"""Throw-away PostgreSQL and Redis servers for ``make bench`` when no URL is given.

Both come from the machine's own binaries (Debian's ``postgresql`` and ``redis-server``
packages, as ``.ci/run`` installs them), listen on free loopback ports and live in a scratch
directory that goes with them. PostgreSQL's ``initdb`` refuses to run as root, so as root the
cluster is run as the ``postgres`` user through ``runuser``. What cannot be started is
reported, not raised: the phases that need it are skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fresh_database(url: str, name: str) -> tuple[str, Callable[[], None]]:
    """Create the database ``name`` anew on the server of ``url`` (dropped first if left over);
    return its URL and a function that drops it."""
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"database name {name!r} must be a plain lower-case identifier")

    def run(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(statement)

    run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    run(f"CREATE DATABASE {name}")
    database_url = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    return database_url, lambda: run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _wait_for_port(port: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@contextmanager
def postgres(scratch: Path) -> Iterator[tuple[str | None, str]]:
    """Yield ``(url, what happened)``; the url is None when no cluster could be started."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not bins:
        yield None, "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
        return
    bin_dir = Path(bins[-1])
    data = scratch / "pg"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            yield None, "running as root and runuser is missing (initdb refuses root)"
            return
        os.chmod(scratch.parent, 0o755)  # a TemporaryDirectory is root's alone
        shutil.chown(scratch, "postgres")
        shutil.chown(data, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    log = data / "log"
    init = subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        yield None, f"initdb failed: {init.stderr.strip()[-300:]}"
        return
    options = f"-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    start = subprocess.run(
        [*pg_ctl, "-l", str(log), "-w", "-o", options, "start"],
        capture_output=True,
        text=True,
        check=False,
    )
    if start.returncode != 0:
        yield None, f"pg_ctl start failed: {start.stderr.strip()[-300:]}"
        return
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres", f"started {bin_dir} on {port}"
    finally:
        subprocess.run(
            [*pg_ctl, "-m", "fast", "stop"],
            capture_output=True,
            check=False,
        )


@contextmanager
def redis(scratch: Path) -> Iterator[tuple[str | None, str]]:
    """Yield ``(url, what happened)``; the url is None when no server could be started."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None, "no redis-server on PATH"
        return
    port = free_port()
    arguments = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [binary, *arguments, "--dir", str(scratch)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not _wait_for_port(port):
            yield None, "redis-server did not listen within 30 s"
            return
        yield f"redis://127.0.0.1:{port}/0", f"started {binary} on {port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def services(
    scratch: Path, postgres_url: str | None, redis_url: str | None
) -> Iterator[dict[str, str | None]]:
    """The servers the bench uses: given ones as they are, missing ones started here.

    Yields ``{"postgres": url, "redis": url, "postgres_note": ..., "redis_note": ...}``.
    """
    with ExitStack() as stack:
        found: dict[str, str | None] = {}
        for name, given, start in (
            ("postgres", postgres_url, postgres),
            ("redis", redis_url, redis),
        ):
            if given:
                found[name], found[f"{name}_note"] = given, "given"
            else:
                folder = scratch / f"{name}-server"
                folder.mkdir()
                found[name], found[f"{name}_note"] = stack.enter_context(start(folder))
        yield found
