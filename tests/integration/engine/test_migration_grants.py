"""Migration 004 replaces the five-parameter run_trigger, run_triggers and run_schedule by
their new signatures and keeps the privileges an operator gave the old ones: a role's
EXECUTE stays, an EXECUTE revoked from PUBLIC stays revoked, a default stays the default."""

from __future__ import annotations

import uuid

import asyncpg

from jobd.sql.migrate import migrate

OLD = """
DELETE FROM jobd.migrations WHERE version = 4;
DROP FUNCTION jobd.run_trigger(text, text, jsonb, jsonb, text, jsonb, interval, timestamptz, int);
DROP FUNCTION jobd.run_triggers(text, text, jsonb, jsonb, text, jsonb, interval, timestamptz, int);
DROP FUNCTION jobd.run_schedule(text, text, jsonb, jsonb, text, interval, timestamptz, int);
CREATE FUNCTION jobd.run_trigger(resource text, trigger text, primary_key jsonb DEFAULT NULL,
  actor jsonb DEFAULT NULL, tenant text DEFAULT NULL) RETURNS bigint
  LANGUAGE sql AS 'SELECT 1::bigint';
CREATE FUNCTION jobd.run_triggers(resource text, trigger text, primary_keys jsonb,
  actor jsonb DEFAULT NULL, tenant text DEFAULT NULL) RETURNS bigint[]
  LANGUAGE sql AS 'SELECT ARRAY[1::bigint]';
CREATE FUNCTION jobd.run_schedule(resource text, name text, input jsonb DEFAULT NULL,
  actor jsonb DEFAULT NULL, tenant text DEFAULT NULL) RETURNS bigint
  LANGUAGE sql AS 'SELECT 1::bigint';
REVOKE ALL ON FUNCTION jobd.run_trigger(text, text, jsonb, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobd.run_trigger(text, text, jsonb, jsonb, text) TO {app};
REVOKE ALL ON FUNCTION jobd.run_schedule(text, text, jsonb, jsonb, text) FROM PUBLIC;
"""

NEW = {
    "run_trigger": "jobd.run_trigger(text, text, jsonb, jsonb, text, jsonb, interval,"
    " timestamptz, integer)",
    "run_triggers": "jobd.run_triggers(text, text, jsonb, jsonb, text, jsonb, interval,"
    " timestamptz, integer)",
    "run_schedule": "jobd.run_schedule(text, text, jsonb, jsonb, text, interval, timestamptz,"
    " integer)",
}


async def test_migration_004_keeps_the_old_functions_privileges(database_url: str) -> None:
    """An install with the old functions (run_trigger: PUBLIC revoked, granted to an app
    role; run_triggers: default; run_schedule: PUBLIC revoked) migrated: the new
    run_trigger is executable by the app role only, run_triggers by anyone, run_schedule
    by neither; the functions are the real ones, not the migration's placeholders."""
    app, other = f"jobd_app_{uuid.uuid4().hex[:8]}", f"jobd_other_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE ROLE {app}; CREATE ROLE {other}")
        await conn.execute(OLD.format(app=app))
        assert await migrate(conn, "jobd") == [4]

        async def can(role: str, fn: str) -> bool:
            sql = "SELECT has_function_privilege($1, $2, 'EXECUTE')"
            allowed: bool = await conn.fetchval(sql, role, NEW[fn])
            return allowed

        assert (await can(app, "run_trigger"), await can(other, "run_trigger")) == (True, False)
        assert (await can(app, "run_triggers"), await can(other, "run_triggers")) == (True, True)
        assert (await can(app, "run_schedule"), await can(other, "run_schedule")) == (False, False)
        with_defaults = (
            "SELECT proname FROM pg_proc WHERE proname LIKE 'run\\_%' AND proacl IS NULL"
        )
        assert [r[0] for r in await conn.fetch(with_defaults)] == ["run_triggers"]
        try:
            await conn.fetchval("SELECT jobd.run_trigger('nope', 'x', '{\"id\": 1}')")
        except asyncpg.PostgresError as exc:  # the real function: no registry row
            assert exc.sqlstate == "42704"
        else:
            raise AssertionError("run_trigger is still the migration's placeholder")
    finally:
        for role in (app, other):
            await conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        await conn.close()
