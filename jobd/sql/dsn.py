"""`database.url`: what may be shown of it, and whether the driver can use it.

    describe_url("postgresql://app:pw@db:5432/app")   # 'db:5432/app'
    redact("cannot use postgresql://app:pw@db/app")   # '... postgresql://app:***@db/app'
    url_problem("postgresql://db:notaport/app")       # "port 'notaport' is not a number ..."

A password is never shown, wherever a URL or a `key=value` connection string appears in a
message: `redact` masks the userinfo's password of any URL in a text and the value of any
`password=` / `sslpassword=` pair, and `describe_url` shows only host, port and database.
`url_problem` finds what asyncpg would refuse only when it connects (a port that is not a
number, a broken IPv6 bracket, an `sslmode` it does not know), so `jobd check` reports it
as a configuration error at the key, and a command never meets it as an internal error.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from jobd.errors import UsageError

SCHEMES = ("postgres://", "postgresql://")
MASK = "***"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")

# user:PASSWORD@ in any URL of a text (greedy to the token's last '@': a password with an
# unencoded '@' or '/' is still masked whole).
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)(\S*)(@)")
# password=VALUE in a key=value string or a query string (a quoted value may hold spaces).
_PAIR_PASSWORD = re.compile(r"(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)", re.I)


class DatabaseUrlError(UsageError):
    """`database.url` cannot be used: the message says why, never the password (exit 2)."""


def redact(text: str) -> str:
    """`text` with every password of a URL or a `password=` pair replaced by ***."""
    return _PAIR_PASSWORD.sub(rf"\g<1>{MASK}", _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text))


def describe_url(url: str) -> str:
    """host:port/database of a URL (several hosts comma-separated), never its password."""
    if not url.startswith(SCHEMES):
        return "(database.url is not a postgresql:// URL)"
    rest = redact(url).split("://", 1)[1]
    netloc, _, path = rest.partition("/")
    hosts = netloc.rpartition("@")[2] or "localhost (Unix socket)"
    database = path.split("?", 1)[0].split("#", 1)[0]
    return f"{hosts}/{database}" if database else hosts


def url_problem(url: str) -> str | None:
    """Why the driver would refuse `url` (None when it looks usable), as a clause that
    follows the URL: "port 'x' is not a number from 1 to 65535"."""
    if not url.startswith(SCHEMES):
        return "not a postgres:// or postgresql:// URL"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # urllib names the problem, never the URL
        return f"malformed: {exc} (write an IPv6 host in brackets, e.g. [::1]:5432)"
    for host in parts.netloc.rpartition("@")[2].split(","):
        problem = _host_problem(host)
        if problem:
            return problem
    query = parse_qs(parts.query)
    for key, allowed in (("sslmode", SSLMODES), ("target_session_attrs", SESSION_ATTRS)):
        for value in query.get(key, []):
            if value not in allowed:
                return f"{key} {value!r} is not one of: {', '.join(allowed)}"
    for value in query.get("port", []):
        problem = _port_problem(value)
        if problem:
            return problem
    return None


def _host_problem(host: str) -> str | None:
    if host.startswith("["):
        bracket = host.find("]")
        if bracket < 0:
            return "malformed: an IPv6 host needs its closing ']' (e.g. [::1]:5432)"
        rest = host[bracket + 1 :]
        if rest and not rest.startswith(":"):
            return "malformed: write an IPv6 host as [address]:port"
        return _port_problem(rest[1:]) if rest else None
    if host.count(":") > 1:
        return "malformed: write an IPv6 host in brackets, e.g. [::1]:5432"
    _, colon, port = host.partition(":")
    return _port_problem(port) if colon else None


def _port_problem(port: str) -> str | None:
    if port.isascii() and port.isdigit() and 0 < int(port) <= 65535:
        return None
    shown = port if len(port) <= 20 else port[:17] + "..."
    return f"port {shown!r} is not a number from 1 to 65535"


def url_error(url: str, reason: str) -> DatabaseUrlError:
    """The error for a URL the driver refused, with its reason (redacted)."""
    return DatabaseUrlError(
        f"database.url ({describe_url(url)}) cannot be used: {redact(reason)}; "
        "fix database.url (jobd check -c FILE shows where)"
    )
