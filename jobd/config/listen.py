"""`admin.listen`: host and port, and the rule that only a loopback listener may go
without `admin.token`.

    parse_listen("[::1]:8370")                       # ('::1', 8370)
    listen_problem("0.0.0.0:8370", token=None)       # '... is not a loopback address ...'

The rule is checked where the configuration is (`jobd check`, and `jobd run` before it
touches the database: exit 2), and again by the admin listener when it starts.
"""

from __future__ import annotations

import ipaddress

from jobd.errors import UsageError

UNGUARDED = (
    "is not a loopback address and admin.token is not set: anyone who can reach it could "
    "run jobs; set admin.token (e.g. admin: {token: ${JOBD_ADMIN_TOKEN}}) or listen on "
    "127.0.0.1"
)


def _split(listen: str) -> tuple[str, int] | None:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port.isascii() and port.isdigit()):
        return None
    return host, int(port)


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:port`) into its parts; UsageError when malformed."""
    parts = _split(listen)
    if parts is None or parts[1] > 65535:
        raise UsageError(f"admin.listen {listen!r} must be host:port, e.g. 127.0.0.1:9187")
    return parts


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_problem(listen: str | None, token: str | None) -> str | None:
    """Why the admin listener may not listen on `listen` (None when it may, or is off):
    its port out of range, or a non-loopback address without a token."""
    if listen is None:
        return None
    parts = _split(listen)
    if parts is None:
        return f"{listen!r} must be host:port, e.g. 127.0.0.1:8370"
    host, port = parts
    if not 0 < port <= 65535:
        return f"port {port} is out of range (1-65535)"
    if token is None and not is_loopback(host):
        return f"{listen} {UNGUARDED}"
    return None
