"""Python entrypoints the example configuration names (`jobd.demo.entrypoints:...`)."""

from __future__ import annotations

from typing import Any

from jobd.actions.base import ActionContext


async def summary(ctx: ActionContext) -> dict[str, Any]:
    """Nightly summary: count today's processed orders of the tenant."""
    count = await ctx.conn.fetchval(
        "SELECT count(*) FROM public.orders WHERE processed AND org_id = $1", ctx.tenant
    )
    ctx.log.info("demo.summary", tenant=ctx.tenant, processed=count)
    return {"processed": count}


async def send_invoice(ctx: ActionContext) -> None:
    """'Send' an invoice by stamping it, in the job's own transaction."""
    assert ctx.record is not None and ctx.table_sql is not None
    await ctx.conn.execute(
        f"UPDATE {ctx.table_sql} SET sent_at = now() WHERE number = $1",
        ctx.record["number"],
    )
    ctx.log.info("demo.invoice_sent", number=ctx.record["number"], tenant=ctx.tenant)


class Persister:
    """An actor persister in Python: keep the id, look the user up again each attempt."""

    def store(self, actor: dict[str, Any]) -> dict[str, Any]:
        return {"id": actor["id"]}

    async def lookup(self, stored: dict[str, Any]) -> dict[str, Any]:
        return {"id": stored["id"], "role": "system" if stored["id"] == 0 else "member"}
