"""Who may use the console, and proof that a POST comes from its own pages.

The admin token's rule, as the JSON API applies it (jobd.admin.plumbing): with a token,
a browser signs in once by posting it (compared in constant time) and gets a session;
without one, the console answers loopback clients only, and they get a session without
signing in. The session is a random id in a cookie (`HttpOnly`, `SameSite=Strict`,
`Path=/console`, `Secure` over HTTPS) naming an entry of this process's memory: a
restart signs everyone out, and signing out ends it at once.

Every POST must carry the session's CSRF token (a random value of its own, in each
form) and must not come from another origin (`Origin` and `Sec-Fetch-Site`, when the
browser sends them). No secret is ever put into a page: the token is only compared,
and the CSRF token is the session's own random value, not derived from a key.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from aiohttp import web

from jobd.admin.plumbing import is_loopback

COOKIE = "jobd_console"
COOKIE_PATH = "/console"
IDLE_S = 12 * 3600.0  # a session unused this long ends
MAX_SESSIONS = 10_000  # more: the oldest go first
OPEN_PATHS = ("/console/login", "/console/static/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Session:
    id: str
    csrf: str
    last_seen: float
    flash: list[str] = field(default_factory=list)


class Sessions:
    """The console's sessions (this process's memory) and the admin token."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._by_id: dict[str, Session] = {}

    def token_matches(self, offered: str) -> bool:
        if self.token is None:
            return False
        given = offered.strip().encode("utf-8", "surrogatepass")
        return hmac.compare_digest(given, self.token.encode("utf-8", "surrogatepass"))

    def new(self) -> Session:
        now = time.monotonic()
        for sid, old in list(self._by_id.items()):
            if now - old.last_seen > IDLE_S:
                del self._by_id[sid]
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now)
        self._by_id[session.id] = session
        return session

    def find(self, sid: str | None) -> Session | None:
        session = self._by_id.get(sid or "")
        now = time.monotonic()
        if session is None or now - session.last_seen > IDLE_S:
            return None
        session.last_seen = now
        return session

    def end(self, session: Session) -> None:
        self._by_id.pop(session.id, None)


SESSIONS_KEY = web.AppKey("console_sessions", Sessions)
# The session of the request being handled, set by the middleware (a request is handled
# in one task, so the pages and the error pages read it from there).
CURRENT: ContextVar[Session | None] = ContextVar("jobd_console_session", default=None)


def sessions_for(app: web.Application, token: str | None) -> Sessions:
    app[SESSIONS_KEY] = sessions = Sessions(token)
    return sessions


def sessions_of(request: web.Request) -> Sessions:
    return request.config_dict[SESSIONS_KEY]


def session_of(request: web.Request) -> Session:
    session = CURRENT.get()
    if session is None:
        raise Refused("refused: sign in first")
    return session


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path=COOKIE_PATH)


class Refused(web.HTTPForbidden):
    """A request the access rules refuse (403, with the reason as the page's text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(text=reason)
        self.why = reason


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site or origin."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser's cross-origin request (the CSRF token still decides)
    # The host and port, not the scheme: behind a TLS proxy the page is https while the
    # listener itself sees http, and the same host and port is the same server.
    return urlsplit(origin).netloc == request.host


async def check_post(request: web.Request, session: Session | None) -> None:
    """A POST must come from this origin and carry the session's CSRF token."""
    if not same_origin(request):
        raise Refused("refused: this request came from another site (cross-site request)")
    if request.path == "/console/login":
        return  # no session yet: the origin check above is the guard
    form = await request.post()
    offered = form.get("csrf")
    if session is None or not isinstance(offered, str) or not offered:
        raise Refused("refused: no valid session or CSRF token; reload the page and try again")
    if not hmac.compare_digest(offered.encode(), session.csrf.encode()):
        raise Refused("refused: wrong CSRF token; reload the page and try again")


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The token rule, the session and the POST checks, before any console handler."""
    CURRENT.set(None)
    if request.path.startswith("/console/static/"):
        return await handler(request)
    sessions = sessions_of(request)
    if sessions.token is None and not is_loopback(request.remote or ""):
        raise Refused(
            "the console without admin.token serves loopback clients only: "
            "set admin.token and sign in with it"
        )
    session = sessions.find(request.cookies.get(COOKIE))
    fresh = False
    if session is None and sessions.token is None:
        session, fresh = sessions.new(), True  # loopback without a token: no sign-in
    if request.method == "POST":
        await check_post(request, session)
    if session is None and not request.path.startswith(OPEN_PATHS):
        if request.method != "GET":
            raise Refused("refused: sign in first")
        raise web.HTTPSeeOther("/console/login?next=" + _local(request.path_qs))
    CURRENT.set(session)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if fresh and session is not None:
            set_cookie(request, exc, session)
        raise
    if fresh and session is not None:
        set_cookie(request, response, session)
    return response


def _local(path: str) -> str:
    """`path` when it is a console path (never a redirect to another site)."""
    safe = path if path.startswith("/console/") and not path.startswith("//") else "/console/"
    return quote(safe, safe="")


def next_path(value: object) -> str:
    """Where to go after signing in: a console path, else the overview."""
    if isinstance(value, str) and value.startswith("/console/") and "//" not in value:
        return value
    return "/console/"
