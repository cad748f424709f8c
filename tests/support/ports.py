"""A loopback port for a server that a child process binds itself (``runserver``).

A port probed with ``bind(("127.0.0.1", 0))`` comes from the kernel's ephemeral range, where
every other ``bind(0)`` of the machine (moto servers, other test sessions running side by
side) may be handed it again before the child binds it. A port below that range is only ever
taken by someone asking for it by number, so a free one stays free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 20000  # above the ports services are usually configured on


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def port_for_child_server() -> int:
    """Return a loopback port that is free now and outside the ephemeral range."""
    low = _ephemeral_low()
    candidates = range(LOWEST, low) if low - LOWEST >= 1000 else range(0)
    for port in random.sample(candidates, min(64, len(candidates))):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    # No room below the ephemeral range on this machine: the kernel's pick, race and all.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
