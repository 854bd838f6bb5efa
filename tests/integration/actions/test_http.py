"""The http action against a real aiohttp server on loopback: requests, outcomes, limits."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import traceback
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from jobd import __version__, model
from jobd.actions.build import ActionServices, build_action
from jobd.actions.failures import PermanentFailure, RetryableFailure, RetryAfter
from jobd.actions.http import HttpClient
from jobd.actions.templates import TemplateError
from tests.integration.actions.conftest import make_ctx, make_job, make_resource

DOCS = Path(__file__).resolve().parents[3] / "docs" / "actions.md"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Sink:
    """A loopback server; `handler` decides the answer, `requests` records what came."""

    url: str = ""
    handler: Handler | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": dict(request.headers),
                "items": list(request.headers.items()),
                "body": body,
            }
        )
        if self.handler is not None:
            return await self.handler(request)
        return web.json_response({"data": {"id": "R-9"}}, headers={"X-Request-Id": "rq-1"})


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    s.url = f"http://{host}:{port}"
    try:
        yield s
    finally:
        s.release.set()
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    async with HttpClient() as c:
        yield c


def http_spec(url: str, **overrides: Any) -> model.HttpAction:
    base = model.HttpAction(
        method="POST",
        url=url,
        headers={},
        body=None,
        timeout_s=5.0,
        success=("2xx",),
        retry_on=(408, 425, 429, "5xx"),
        sign_secret=None,
    )
    return replace(base, **overrides)


def build(spec: model.HttpAction, client: HttpClient) -> Any:
    action = model.Action("process", "http", http=spec)
    return build_action(make_resource({"process": action}), action, ActionServices(http=client))


def trigger_ctx(**fields: Any) -> Any:
    fields.setdefault("record", {"id": 42, "status": "pending", "total": 12.5})
    fields.setdefault("primary_key", {"id": 42})
    fields.setdefault("tenant", "acme")
    fields.setdefault("actor", {"id": 7, "role": "admin"})
    return make_ctx(**fields)


async def test_envelope_headers_and_recorded_result(sink: Sink, client: HttpClient) -> None:
    """The default body is the envelope with exactly its keys; jobd's headers are sent; the
    response becomes the result (status, safe headers, JSON body)."""
    action = build(http_spec(sink.url + "/hook"), client)
    result = await action.run(trigger_ctx(input={"period": "day"}))
    (req,) = sink.requests
    assert req["method"] == "POST" and req["raw_path"] == "/hook"
    body = json.loads(req["body"])
    assert body == {
        "resource": "orders",
        "trigger": "process",
        "action": "process",
        "primary_key": {"id": 42},
        "record": {"id": 42, "status": "pending", "total": 12.5},
        "tenant": "acme",
        "actor": {"id": 7, "role": "admin"},
        "input": {"period": "day"},
        "job": {
            "id": 1234,
            "attempt": 1,
            "max_attempts": 5,
            "queue": "orders",
            "inserted_at": "2026-11-29T08:00:00Z",
        },
    }
    headers = req["headers"]
    assert headers["Idempotency-Key"] == "1234"
    assert headers["User-Agent"] == f"jobd/{__version__}"
    assert headers["Content-Type"] == "application/json"
    assert result == {
        "status": 200,
        "body": {"data": {"id": "R-9"}},
        "body_truncated": False,
        "headers": {
            "content-type": "application/json; charset=utf-8",
            "content-length": str(len(b'{"data": {"id": "R-9"}}')),
            "x-request-id": "rq-1",
        },
    }


async def test_templates_and_percent_encoding(sink: Sink, client: HttpClient) -> None:
    """URL values are percent-encoded inside their segment; headers and body templates render."""
    spec = http_spec(
        sink.url + "/t/{tenant}/orders/{record.id}/process?by={actor.email}&job={job.id}",
        method="PUT",
        headers={"X-Tenant": "{tenant}", "X-Attempt": "{job.attempt}"},
        body=model.freeze_json({"id": "{record.id}", "n": "{record.n}", "msg": "hi {input.who}"}),
    )
    ctx = trigger_ctx(
        record={"id": "../admin?x=1", "n": 3}, actor={"email": "a b@x.org"}, input={"who": "you"}
    )
    await build(spec, client).run(ctx)
    await build(http_spec(sink.url + "/o/{record.id}/x"), client).run(
        trigger_ctx(record={"id": ".."})
    )
    first, second = sink.requests
    assert first["method"] == "PUT"
    assert (
        first["raw_path"] == "/t/acme/orders/..%2Fadmin%3Fx%3D1/process?by=a%20b%40x.org&job=1234"
    )
    assert first["headers"]["X-Tenant"] == "acme" and first["headers"]["X-Attempt"] == "1"
    assert json.loads(first["body"]) == {"id": "../admin?x=1", "n": 3, "msg": "hi you"}
    assert second["raw_path"] == "/o/%2E%2E/x"


async def test_configured_headers_replace_defaults_case_insensitively(
    sink: Sink, client: HttpClient
) -> None:
    """A configured content-type replaces jobd's (one header, not two); the idempotency
    key cannot be replaced."""
    headers = {"content-type": "application/vnd.acme+json", "idempotency-key": "mine"}
    await build(http_spec(sink.url + "/h", headers=headers), client).run(trigger_ctx())
    items = [(k.lower(), v) for k, v in sink.requests[0]["items"]]
    assert [v for k, v in items if k == "content-type"] == ["application/vnd.acme+json"]
    assert [v for k, v in items if k == "idempotency-key"] == ["1234"]


def test_unknown_placeholder_fails_at_build() -> None:
    """An unknown placeholder in URL, header or body is an error when the action is built."""
    for spec in (
        http_spec("http://x/{recrd.id}"),
        http_spec("http://x/", headers={"A": "{nope}"}),
        http_spec("http://x/", body=model.freeze_json({"a": ["{job.secret}"]})),
    ):
        with pytest.raises(TemplateError, match="unknown placeholder"):
            build(spec, HttpClient())


async def test_missing_template_value_is_permanent(sink: Sink, client: HttpClient) -> None:
    """A placeholder with no value for this job fails permanently, before any request."""
    with pytest.raises(PermanentFailure, match=r"\{actor.email\}") as info:
        await build(http_spec(sink.url + "/{actor.email}"), client).run(trigger_ctx(actor=None))
    assert info.value.kind == "template" and sink.requests == []


def answer(status: int, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers=headers, text="nope")

    return handler


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, None),
        (201, None),
        (204, None),
        (302, PermanentFailure),
        (400, PermanentFailure),
        (401, PermanentFailure),
        (404, PermanentFailure),
        (422, PermanentFailure),
        (408, RetryableFailure),
        (425, RetryableFailure),
        (429, RetryableFailure),
        (500, RetryableFailure),
        (502, RetryableFailure),
        (503, RetryableFailure),
    ],
)
async def test_status_classes(
    sink: Sink, client: HttpClient, status: int, outcome: type[Exception] | None
) -> None:
    """2xx succeed; 408/425/429/5xx are retryable; every other status is permanent."""
    sink.handler = answer(status, {"Location": "/elsewhere"} if status == 302 else None)
    action = build(http_spec(sink.url + "/s"), client)
    if outcome is None:
        result = await action.run(trigger_ctx())
        assert result["status"] == status and result["body"] is None
        return
    with pytest.raises(outcome) as info:
        await action.run(trigger_ctx())
    assert type(info.value) is outcome
    assert info.value.status == status and info.value.kind == "http"  # type: ignore[attr-defined]
    assert str(status) in str(info.value) and "127.0.0.1" in str(info.value)
    assert len(sink.requests) == 1  # no redirect followed


async def test_custom_success_and_retry_on(sink: Sink, client: HttpClient) -> None:
    """`success` and `retry_on` replace the defaults."""
    sink.handler = answer(409)
    spec = http_spec(sink.url + "/c", success=(200, 409), retry_on=(404,))
    assert (await build(spec, client).run(trigger_ctx()))["status"] == 409
    sink.handler = answer(404)
    with pytest.raises(RetryableFailure):
        await build(spec, client).run(trigger_ctx())
    sink.handler = answer(503)
    with pytest.raises(PermanentFailure):
        await build(spec, client).run(trigger_ctx())


async def test_retry_after_seconds_and_http_date(sink: Sink, client: HttpClient) -> None:
    """Retry-After as seconds or as an HTTP date becomes RetryAfter.retry_after_s."""
    action = build(http_spec(sink.url + "/r"), client)
    sink.handler = answer(429, {"Retry-After": "120"})
    with pytest.raises(RetryAfter) as info:
        await action.run(trigger_ctx())
    assert info.value.retry_after_s == 120 and info.value.status == 429
    when = datetime.now(UTC) + timedelta(seconds=90)
    sink.handler = answer(503, {"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(RetryAfter) as info:
        await action.run(trigger_ctx())
    assert 80 <= info.value.retry_after_s <= 91
    sink.handler = answer(503, {"Retry-After": "soon"})  # unparseable: plain backoff
    with pytest.raises(RetryableFailure) as plain:
        await action.run(trigger_ctx())
    assert type(plain.value) is RetryableFailure


async def test_timeout_is_retryable(sink: Sink, client: HttpClient) -> None:
    """A server slower than `timeout` gives a retryable failure of kind timeout."""

    async def slow(request: web.Request) -> web.StreamResponse:
        await sink.release.wait()
        return web.Response()

    sink.handler = slow
    with pytest.raises(RetryableFailure, match=r"timed out after 0\.2s") as info:
        await build(http_spec(sink.url + "/slow", timeout_s=0.2), client).run(trigger_ctx())
    assert info.value.kind == "timeout"


async def test_connection_refused_is_retryable(client: HttpClient) -> None:
    """Nothing listening: a retryable failure of kind connection."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RetryableFailure, match="connection failed") as info:
        await build(http_spec(f"http://127.0.0.1:{port}/x"), client).run(trigger_ctx())
    assert info.value.kind == "connection"


def documented_verifier() -> Callable[..., bool]:
    """The verification snippet of docs/actions.md, executed as written."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"<!-- signature-verification -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/actions.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOCS), "exec"), namespace)
    return namespace["verify_jobd_signature"]  # type: ignore[no-any-return]


async def test_signature_verifies_with_the_documented_snippet(
    sink: Sink, client: HttpClient
) -> None:
    """The Jobd-Signature header verifies with the docs' snippet; a wrong secret or a
    changed body does not."""
    verify = documented_verifier()
    await build(http_spec(sink.url + "/signed", sign_secret="whsec_test"), client).run(
        trigger_ctx()
    )
    (req,) = sink.requests
    header = req["headers"]["Jobd-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify("whsec_test", header, req["body"])
    assert not verify("other", header, req["body"])
    assert not verify("whsec_test", header, req["body"] + b" ")
    assert not verify("whsec_test", "t=1,v1=" + header.split("v1=")[1], req["body"])  # too old


async def test_idempotency_key_is_the_job_id_on_every_attempt(
    sink: Sink, client: HttpClient
) -> None:
    """A failed attempt and its retry carry the same Idempotency-Key: the job id."""
    statuses = iter([503, 200])

    async def flaky(request: web.Request) -> web.StreamResponse:
        return web.json_response({}, status=next(statuses))

    sink.handler = flaky
    action = build(http_spec(sink.url + "/i"), client)
    with pytest.raises(RetryableFailure):
        await action.run(trigger_ctx(job=make_job(job_id=55, attempt=1)))
    await action.run(trigger_ctx(job=make_job(job_id=55, attempt=2)))
    keys = [r["headers"]["Idempotency-Key"] for r in sink.requests]
    attempts = [json.loads(r["body"])["job"]["attempt"] for r in sink.requests]
    assert keys == ["55", "55"] and attempts == [1, 2]


async def test_response_is_usable_by_on_success(sink: Sink, client: HttpClient, conn: Any) -> None:
    """The recorded result feeds `{response: "data.id"}` of an update in on_success."""
    await conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, remote_ref text)")
    await conn.execute("INSERT INTO public.orders VALUES (42, NULL)")
    result = await build(http_spec(sink.url + "/p"), client).run(trigger_ctx())
    mark = model.Action(
        "mark",
        "update",
        update=model.UpdateAction({"remote_ref": model.ResponseValue(("data", "id"))}),
    )
    runnable = build_action(make_resource({"mark": mark}), mark, ActionServices())
    await runnable.run(trigger_ctx(conn=conn, response=result, table_sql='"public"."orders"'))
    assert await conn.fetchval("SELECT remote_ref FROM public.orders WHERE id = 42") == "R-9"


async def test_huge_response_is_capped_while_streaming(sink: Sink, client: HttpClient) -> None:
    """A 50 MB response is cut at the cap: recorded as truncated, memory stays small."""
    chunk = b"x" * (1 << 20)

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            for _ in range(50):
                await resp.write(chunk)
        except ConnectionError:
            pass  # the client hung up after its cap, as it should
        return resp

    sink.handler = huge
    tracemalloc.start()
    try:
        result = await build(http_spec(sink.url + "/big"), client).run(trigger_ctx())
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["status"] == 200 and result["body_truncated"] is True
    assert result["body"] is None
    assert peak_bytes < 12 * (1 << 20), peak_bytes


async def test_secrets_and_actor_values_never_logged(sink: Sink, client: HttpClient) -> None:
    """An actor's secret-looking field, the Authorization header and the signing secret
    appear in no captured log line and no error text (with its traceback, as the job
    records it), on success, on failure, and when a secret is in the URL."""
    secrets = ["tok_ACTOR_SECRET", "AUTH_HEADER_SECRET", "SIGNING_SECRET"]
    spec = http_spec(
        sink.url + "/a/{actor.id}",
        headers={"Authorization": "Bearer AUTH_HEADER_SECRET"},
        sign_secret="SIGNING_SECRET",
    )
    ctx = trigger_ctx(actor={"id": 7, "api_token": "tok_ACTOR_SECRET"}, log=structlog.get_logger())
    action = build(spec, client)
    errors: list[str] = []
    with structlog.testing.capture_logs() as logs:
        await action.run(ctx)
        for status in (500, 403):
            sink.handler = answer(status)
            with pytest.raises(Exception) as info:
                await action.run(ctx)
            errors.append("".join(traceback.format_exception(info.value)))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        refused = build(http_spec(f"http://127.0.0.1:{port}/?t={{actor.api_token}}"), client)
        with pytest.raises(RetryableFailure) as refusal:
            await refused.run(ctx)
        errors.append("".join(traceback.format_exception(refusal.value)))
    assert any(entry["event"] == "action.http" for entry in logs)
    assert sink.requests[0]["headers"]["Authorization"] == "Bearer AUTH_HEADER_SECRET"
    text = repr(logs) + "".join(errors)
    for secret in secrets:
        assert secret not in text
