"""The Python action of the console's browser tests (`tests.acceptance.console_actions:charge`),
run inside the real `jobd run` process: it fails until the payment is approved."""

from __future__ import annotations

from jobd.actions.base import ActionContext


async def charge(ctx: ActionContext) -> None:
    """Fail with a clear error unless `public.approvals` holds the payment's id."""
    record = ctx.record or {}
    approved = await ctx.conn.fetchval(
        "SELECT true FROM public.approvals WHERE id = $1", record.get("id")
    )
    if not approved:
        raise RuntimeError(f"payment {record.get('id')} refused: no approval on file")
