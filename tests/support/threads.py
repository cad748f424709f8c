"""Work released in several threads at once, each with a database connection of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.db import connections

Result = TypeVar("Result")


def run_as_hosts(count: int, work: Callable[[], Result]) -> list[Result]:
    """Run ``work`` in ``count`` threads released at once, as cron would on ``count`` hosts.

    Each thread has its own database connection (closed when it is done); an exception in
    any thread is raised here.
    """
    barrier = threading.Barrier(count)

    def host(_: int) -> Result:
        try:
            barrier.wait(timeout=30)
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(host, range(count), timeout=120))
