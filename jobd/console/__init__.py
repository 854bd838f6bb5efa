"""The web console: server-rendered pages on the admin listener (docs/console.md).

    app = build_app(deps, token=token)        # jobd.admin.server
    install(app, token)                       # adds /console/ (and / redirects there)

Pages (`pages.py`): overview, jobs (filters, keyset pages), job detail, triggers and
schedules (with the SQL `jobd explain` prints), rows ("what happened to orders 42").
Actions (`actions.py`): retry, cancel, bulk retry/cancel with a count and a confirmation,
queue pause/resume/scale, trigger and schedule runs. Access (`access.py`): the admin
token's rule, a session cookie (HttpOnly, SameSite=Strict) after one sign-in, a CSRF
token and an Origin check on every POST. Reads (`data.py`) stay on the jobs table's
indexes; the writes are jobd.engine.ops' and jobd.triggers.api's, as the JSON API's.

The console is a sub-application of the admin app, wired by the daemon (the admin
package knows nothing of it): templates and static files come from the package, nothing
is fetched at run time, and every page reads without JavaScript (the script only
refreshes the overview and asks for confirmations).
"""

from __future__ import annotations

from aiohttp import web

from jobd.console.access import access_middleware, sessions_for
from jobd.console.actions import routes as action_routes
from jobd.console.pages import routes as page_routes
from jobd.console.render import STATIC_DIR, html_errors
from jobd.console.scans import attach_scans

PREFIX = "/console"

__all__ = ["PREFIX", "install"]


async def _to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PREFIX + "/")


def install(app: web.Application, token: str | None) -> web.Application:
    """Mount the console on the admin `app` (before it starts) under /console/; `/`
    redirects there. `token` is the admin token (None: loopback only, as the API)."""
    console = web.Application(middlewares=[html_errors, access_middleware])
    sessions_for(console, token)
    console.add_routes(page_routes)
    console.add_routes(action_routes)
    console.router.add_static("/static/", STATIC_DIR, append_version=True)
    app.add_subapp(PREFIX + "/", console)
    app.router.add_get("/", _to_console)
    app.router.add_get(PREFIX, _to_console)
    attach_scans()
    return console
