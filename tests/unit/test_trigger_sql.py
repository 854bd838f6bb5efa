"""The trigger SQL builders and pure helpers: paging decision, key prefixes, holds,
placeholders filled only with quoted identifiers and compiled expressions."""

from __future__ import annotations

from jobd.config import load_config_text
from jobd.model import SortKey
from jobd.triggers.jobs import cron_entries, key_prefix, worker_hold
from jobd.triggers.scheduler import page_sizes
from jobd.triggers.sqlgen import fill, order_keys, pages_by_key, reread_sql, scan_sql
from jobd.triggers.tables import ResolvedTable

BODY = """
version: 1
database: {url: "postgresql://unused"}
resources:
  orders:
    table: public.orders
    reads:
      newest: {sort: [inserted_at desc], where: "note IS NULL"}
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
    triggers:
      process: {action: work, where: "status = 'new'"}
      sorted: {action: work, read: newest, trigger_once: true, discard_cooldown: 5m}
      by_key_desc: {action: work, sort: [id desc], lock_for_update: false}
"""
SPEC = load_config_text(BODY, "t.yaml", env={})
ORDERS = SPEC.resources["orders"]
TABLE = ResolvedTable(
    "orders",
    "public",
    "orders",
    ("id",),
    ("id", "status", "note", "inserted_at"),
    {"id": "bigint", "status": "text", "note": "text", "inserted_at": "timestamptz"},
)


def test_fill_only_replaces_known_placeholders() -> None:
    """Braces of SQL literals ('{}') stay; replaced text is not scanned again; comment lines
    are dropped so nothing is spliced into a comment."""
    assert fill("a {x} '{}' {y}", {"x": "{y}"}) == "a {y} '{}' {y}"
    assert fill("-- about {x}\nSELECT {x}\n  -- more", {"x": "'a\nb'"}) == "SELECT 'a\nb'"


def test_paging_decision() -> None:
    """Pages only when the scan order is exactly the primary key in one direction."""
    pk = ("a", "b")
    assert pages_by_key([SortKey("a"), SortKey("b")], pk)
    assert pages_by_key([SortKey("a", True), SortKey("b", True)], pk)
    assert not pages_by_key([SortKey("a"), SortKey("b", True)], pk)
    assert not pages_by_key([SortKey("c"), SortKey("a"), SortKey("b")], pk)
    keys = order_keys(ORDERS, ORDERS.triggers["sorted"], ("id",))
    assert keys == [SortKey("inserted_at", True), SortKey("id")]


def test_page_sizes_grow_from_stream_batch_size_to_a_cap() -> None:
    """Keyset pages start at stream_batch_size and double, up to MAX_PAGE_FACTOR times it."""
    sizes = page_sizes(1000)
    assert [next(sizes) for _ in range(7)] == [1000, 2000, 4000, 8000, 16000, 16000, 16000]
    small = page_sizes(3)
    assert [next(small) for _ in range(6)] == [3, 6, 12, 24, 48, 48]


def test_scan_sql_probes_jobs_only_for_a_record_limit() -> None:
    """The uniqueness probe is guarded by `$10 IS NULL` (no record_limit: the plan drops
    it, ON CONFLICT alone keeps one job per row); ON CONFLICT is always there."""
    sql = scan_sql(ORDERS, ORDERS.triggers["process"], TABLE, '"public"."orders"', "jobd")
    for text in (sql.first, sql.next or ""):
        assert "WHERE $10::bigint IS NULL\n      OR NOT EXISTS" in text
        assert "ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING" in text


def test_scan_sql_default_is_paged_by_key() -> None:
    """The default read pages by the key; the where is compiled with the alias t, the table
    and columns quoted; the later pages continue after the last key."""
    sql = scan_sql(ORDERS, ORDERS.triggers["process"], TABLE, '"public"."orders"', "jobd")
    assert sql.paged and sql.pk_names == ("id",)
    assert '"t"."status" = \'new\'' in sql.first
    assert 'FROM "public"."orders" AS t' in sql.first
    assert sql.next is not None and '(t."id") > ($13)' not in sql.next
    assert '(t."id") > ($14)' in sql.next  # $12 is the tags, $13 the pk name
    assert "{" + "filter}" not in sql.first


def test_scan_sql_custom_sort_is_one_statement() -> None:
    """A sort that is not the key runs as one statement ordered by it, then the key."""
    sql = scan_sql(ORDERS, ORDERS.triggers["sorted"], TABLE, '"public"."orders"', "jobd")
    assert not sql.paged and sql.next is None
    assert 'ORDER BY t."inserted_at" DESC, t."id"' in sql.first
    assert '("t"."note" IS NULL)' in sql.first
    desc = scan_sql(ORDERS, ORDERS.triggers["by_key_desc"], TABLE, '"x"', "jobd")
    assert desc.paged and desc.next is not None and '(t."id") < ($14)' in desc.next


def test_reread_sql_locks_only_with_lock_for_update() -> None:
    """The worker's re-read applies the where and locks unless lock_for_update is false."""
    locked = reread_sql(ORDERS, ORDERS.triggers["process"], TABLE, '"o"', "jobd")
    assert "FOR UPDATE OF t" in locked and '"t"."status"' in locked
    unlocked = reread_sql(ORDERS, ORDERS.triggers["by_key_desc"], TABLE, '"o"', "jobd")
    assert "FOR UPDATE" not in unlocked


def test_keys_and_holds() -> None:
    """The tenant is part of the key only for the schema strategy; holds follow
    trigger_once and discard_cooldown (a discarded job, and one whose failure on_error
    handled, rest the row for the cooldown)."""
    trigger = ORDERS.triggers["sorted"]
    assert key_prefix(trigger, "acme", "schema") == "orders.sorted:acme:"
    assert key_prefix(trigger, "acme", "attribute") == "orders.sorted::"
    assert worker_hold(trigger) == {"discarded": 300.0, "handled": 300.0, "completed": None}
    assert worker_hold(ORDERS.triggers["process"]) == {"discarded": 3600.0, "handled": 3600.0}


def test_cron_entries_default_every_minute() -> None:
    """Every active trigger's scheduler runs on "* * * * *" by default, keyed to skip."""
    entries = cron_entries(SPEC)
    assert [e.name for e in entries] == [
        "orders.process.scheduler",
        "orders.sorted.scheduler",
        "orders.by_key_desc.scheduler",
    ]
    assert {e.expression for e in entries} == {"* * * * *"}
    assert all(e.job.uniq_key == f"cron:{e.name}" for e in entries)
