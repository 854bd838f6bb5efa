"""The `http` action (SPEC 1.5): one request per attempt, through one pooled session.

    process:
      http:
        url: "https://api.example.com/orders/{record.id}/process"
        headers: {Authorization: "Bearer ${ORDERS_API_TOKEN}"}
        sign: {secret: "${WEBHOOK_SECRET}"}

Every request carries `Idempotency-Key: <job id>` (the same on every attempt), `User-Agent:
jobd/<version>`, `Content-Type: application/json`, and with `sign` a `Jobd-Signature:
t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, or with `sign: {scheme:
standard-webhooks}` the Standard Webhooks headers `webhook-id` (the job id, the same on
every attempt), `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"<id>.<t>.<body>" keyed with the base64-decoded secret>`. When tracing is on (the
`otel` configuration), a W3C `traceparent` names the job attempt's span. The body is
the envelope (`envelope`) or the rendered `body` template; a GET sends none (and signs the
empty body). Redirects are not followed (a 3xx is a status like any other). Cookies are
never kept.

Outcomes (see jobd.actions.failures): a status in `success` returns an `HttpResult`
(status, recorded headers, JSON body up to the client's cap); a status in `retry_on` raises
`RetryableFailure`, or `RetryAfter` when the server sent a valid `Retry-After` (seconds or
HTTP date, capped at a day); timeouts and connection errors raise `RetryableFailure`; any
other status raises `PermanentFailure` (no more attempts, on_error runs now).

The response body is read while streaming up to the cap (1 MiB by default) and no further;
a bigger body is recorded as truncated, without its content, and the connection dropped.
Logs and error messages name the action, method, host and status only: never the URL's
values, headers, bodies, actors or secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from multidict import CIMultiDict
from yarl import URL

from jobd import __version__, model
from jobd.actions.base import ActionContext
from jobd.actions.failures import PermanentFailure, RetryableFailure, RetryAfter
from jobd.actions.templates import (
    TemplateError,
    check_body,
    check_template,
    render_body,
    render_header,
    render_url,
)
from jobd.actions.update import HttpResult
from jobd.common.jsontext import json_text
from jobd.errors import JobdError
from jobd.telemetry import emit, trace_headers

log = structlog.get_logger("jobd.actions")

MAX_RESPONSE_BYTES = 1 << 20
MAX_RETRY_AFTER_S = 86_400.0
MAX_TEXT_CHARS = 4096  # of a non-JSON body kept in the result
RECORDED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "location",
        "etag",
        "last-modified",
        "retry-after",
        "x-request-id",
        "request-id",
    }
)
_RECORDED_IN_ORDER = tuple(sorted(RECORDED_HEADERS))
USER_AGENT = f"jobd/{__version__}"


class HttpClient:
    """The daemon's one pooled HTTP session: `await start()`, then `await close()`."""

    def __init__(
        self,
        *,
        limit: int = 100,
        limit_per_host: int = 20,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.limit, self.limit_per_host = limit, limit_per_host
        self.max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.limit, limit_per_host=self.limit_per_host, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # jobs of different actors share nothing
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> HttpClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise JobdError("the HTTP client is not started")
        return self._session


def dumps(value: Any) -> bytes:
    return json_text(value).encode()


def iso_utc(value: datetime) -> str:
    if value.tzinfo is not UTC:  # asyncpg's timestamptz are UTC already: no conversion
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def job_values(ctx: ActionContext) -> dict[str, Any]:
    job = ctx.job
    return {
        "id": job.id,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "queue": job.queue,
        "priority": job.priority,
        "inserted_at": iso_utc(job.inserted_at),
    }


def envelope(
    ctx: ActionContext, action: str, job_fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The default body (SPEC 1.5); schedules add `"schedule"`. `job_fields`: the job's
    `job_values`, when the caller has them already."""
    job = {k: v for k, v in (job_fields or job_values(ctx)).items() if k != "priority"}
    body = {
        "resource": ctx.resource,
        "trigger": ctx.trigger,
        "action": action,
        "primary_key": ctx.primary_key,
        "record": ctx.record,
        "tenant": ctx.tenant,
        "actor": ctx.actor,
        "input": dict(ctx.input or {}),
        "job": job,
    }
    if ctx.schedule is not None:
        body["schedule"] = ctx.schedule
    if ctx.event is not None:  # a change-data event's job: insert, update or delete
        body["event"] = ctx.event
    return body


def template_values(
    ctx: ActionContext, action: str, job_fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What placeholders resolve against (see jobd.actions.templates)."""
    return {
        "record": ctx.record or {},
        "primary_key": ctx.primary_key or {},
        "actor": ctx.actor or {},
        "input": ctx.input or {},
        "tenant": ctx.tenant,
        "resource": ctx.resource,
        "trigger": ctx.trigger,
        "schedule": ctx.schedule,
        "action": action,
        "event": ctx.event or "",  # empty for a job of the scan or a programmatic run
        "job": job_fields or job_values(ctx),
    }


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def standard_webhooks_headers(
    secret: str, message_id: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The Standard Webhooks headers: `webhook-signature: v1,<base64 HMAC-SHA256 of
    "<id>.<timestamp>.<body>">`, keyed with the secret's bytes (base64 after `whsec_`)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{mac}",
    }


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delay_s = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(0.0, delay_s), MAX_RETRY_AFTER_S)


async def read_capped(resp: aiohttp.ClientResponse, cap_bytes: int) -> tuple[bytes, bool]:
    """At most `cap_bytes` of the body, and whether there was more (not read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > cap_bytes:
            return b"", True
    return b"".join(chunks), False


def make_result(resp: aiohttp.ClientResponse, raw: bytes, truncated: bool) -> HttpResult:
    """What the job records: status, a safe subset of headers, the JSON body (or text)."""
    got = resp.headers  # case-insensitive: ask for the few recorded ones
    headers = {k: got[k] for k in _RECORDED_IN_ORDER if k in got}
    result = HttpResult(status=resp.status, headers=headers, body=None, body_truncated=truncated)
    if raw and not truncated:
        try:
            result["body"] = json.loads(raw)
        except ValueError:
            result["text"] = raw[: MAX_TEXT_CHARS * 4].decode("utf-8", "replace")[:MAX_TEXT_CHARS]
    return result


class HttpCallAction:
    """Runs one `http` action through the shared client."""

    def __init__(
        self, name: str, resource: str, spec: model.HttpAction, client: HttpClient
    ) -> None:
        problems = [
            *check_template(spec.url),
            *(p for v in spec.headers.values() for p in check_template(v)),
            *(check_body(spec.body) if spec.body is not None else []),
        ]
        if problems:
            raise TemplateError(
                f"http action {name!r} of resource {resource!r}: " + "; ".join(problems)
            )
        self.name, self.spec, self.client = name, spec, client
        self.host = urlsplit(spec.url).hostname or "?"
        self.timeout = aiohttp.ClientTimeout(total=spec.timeout_s)

    def _where(self) -> str:
        return f"http action {self.name!r} ({self.spec.method} {self.host})"

    def request(
        self, ctx: ActionContext, now_s: float | None = None
    ) -> tuple[str, CIMultiDict[str], bytes]:
        """The URL, headers and body of this attempt's request."""
        job_fields = job_values(ctx)
        values = template_values(ctx, self.name, job_fields)
        url = render_url(self.spec.url, values)
        if self.spec.method == "GET":
            body = b""
        elif self.spec.body is None:
            body = dumps(envelope(ctx, self.name, job_fields))
        else:
            body = dumps(render_body(self.spec.body, values))
        # Case-insensitive: a configured `content-type` replaces ours instead of doubling it.
        headers = CIMultiDict({"User-Agent": USER_AGENT, "Content-Type": "application/json"})
        for name, template in self.spec.headers.items():
            headers[name] = render_header(template, values, name)
        headers["Idempotency-Key"] = str(ctx.job.id)
        for name, value in trace_headers(ctx.job.id, ctx.job.attempt).items():
            headers.setdefault(name, value)  # a configured header of that name stays
        secret = self.spec.sign_secret
        if secret:
            timestamp = int(now_s if now_s is not None else time.time())
            if self.spec.sign_scheme == "standard-webhooks":
                signed = standard_webhooks_headers(secret, str(ctx.job.id), body, timestamp)
                headers.update(signed)
            else:
                headers["Jobd-Signature"] = signature_header(secret, body, timestamp)
        return url, headers, body

    async def run(self, ctx: ActionContext) -> HttpResult:
        try:
            url, headers, body = self.request(ctx)
        except TemplateError as exc:  # the job's data cannot fill the template: no retry helps
            raise PermanentFailure(f"{self._where()}: {exc}", kind="template") from exc
        started = time.perf_counter()
        result = await self._send(url, headers, body)
        emit(
            "action.http",
            {"duration_ms": round((time.perf_counter() - started) * 1000, 3)},
            {
                "action": self.name,
                "method": self.spec.method,
                "host": self.host,
                "status": result["status"],
                "job_id": ctx.job.id,
            },
        )
        return self._outcome(result)

    async def _send(self, url: str, headers: CIMultiDict[str], body: bytes) -> HttpResult:
        where = self._where()
        try:
            # encoded=True: send the URL as rendered; re-quoting could undo our encoding.
            async with self.client.session.request(
                self.spec.method,
                URL(url, encoded=True),
                data=body or None,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            ) as resp:
                raw, truncated = await read_capped(resp, self.client.max_response_bytes)
                if truncated:
                    resp.close()  # drop the connection rather than drain the rest
                return make_result(resp, raw, truncated)
        except TimeoutError as exc:
            message = f"{where}: timed out after {self.spec.timeout_s:g}s"
            raise RetryableFailure(message, kind="timeout") from exc
        # `from None` below: aiohttp's own messages may quote the rendered URL (actor
        # values), and a chained cause would put it into the job's recorded traceback.
        except aiohttp.InvalidURL:
            raise PermanentFailure(f"{where}: invalid URL", kind="config") from None
        except aiohttp.ClientError as exc:  # refused, reset, DNS, broken payload, ...
            message = f"{where}: connection failed ({type(exc).__name__})"
            raise RetryableFailure(message, kind="connection") from None

    def _outcome(self, result: HttpResult) -> HttpResult:
        status = int(result["status"])
        if self.spec.is_success(status):
            return result
        message = f"{self._where()}: answered {status}"
        if self.spec.should_retry(status):
            wait_s = parse_retry_after(result["headers"].get("retry-after"))
            if wait_s is not None:
                raise RetryAfter(f"{message}, retry after {wait_s:g}s", wait_s, status=status)
            raise RetryableFailure(message, status=status, kind="http")
        raise PermanentFailure(message, status=status, kind="http")
