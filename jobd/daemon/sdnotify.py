"""systemd's notify protocol (READY, STOPPING, WATCHDOG) in a few lines, no dependency.

Active only when systemd set `NOTIFY_SOCKET`; otherwise every call is a no-op.
"""

from __future__ import annotations

import os
import socket


def _address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    # An abstract socket is written with a leading "@"; the kernel wants a NUL byte.
    return "\0" + address[1:] if address.startswith("@") else address


def notify(state: str) -> bool:
    """Send one state line (e.g. "READY=1"); True when it was sent."""
    address = _address()
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError:
            return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of WatchdogSec when systemd asked for pings (for this process), else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


def ready(status: str = "") -> bool:
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping() -> bool:
    return notify("STOPPING=1")


def reloading() -> bool:
    return notify("RELOADING=1")


def watchdog() -> bool:
    return notify("WATCHDOG=1")
