-- The SQL API's registry: the configuration as the functions run_trigger / run_triggers /
-- run_schedule need it. Written by jobd.triggers.sql_api.sync_registry; read through
-- jobd.sql.enqueue.

-- name: registry_resolve_table
-- The schema a table resolves to on this connection's search_path (NULL: no such table).
-- $1 the table as SQL text with quoted identifiers.
SELECT n.nspname::text
  FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.oid = pg_catalog.to_regclass($1::text)

-- name: registry_lock
-- Taken first by every rewrite of the registry (no parameters): two writers (daemons
-- starting at once) write one after the other, never interleaved.
SELECT pg_advisory_xact_lock(hashtextextended('{schema}.registry', 0))

-- name: registry_clear
-- Before registry_insert, in the same transaction (no parameters).
DELETE FROM {schema}.registry

-- name: registry_insert
-- Every trigger and scheduled action of the configuration. $1 a JSON array (text) of
-- objects whose keys are the table's column names (jobd.triggers.sql_api.RegistryRow).
-- JSON as text: the connection need not have jobd's codecs.
INSERT INTO {schema}.registry
SELECT (jsonb_populate_record(NULL::{schema}.registry,
                              e.value || jsonb_build_object('updated_at', now()))).*
  FROM jsonb_array_elements($1::text::jsonb) AS e

-- name: client_run_trigger
-- jobd.client.Client.run_trigger (primary key NULL: the scheduler). JSON travels as text
-- (no codec needed on the caller's connection). $1 resource, $2 trigger, $3 primary key
-- (JSON text, NULL: run the scheduler), $4 actor (JSON text or NULL), $5 tenant, $6 input
-- (JSON text or NULL), $7 schedule_in in seconds (float8 or NULL), $8 scheduled_at (ISO
-- 8601 text with an offset, or NULL), $9 priority (int or NULL).
SELECT {schema}.run_trigger($1::text, $2::text, $3::text::jsonb, $4::text::jsonb, $5::text,
                            $6::text::jsonb, make_interval(secs => $7::float8),
                            $8::text::timestamptz, $9::int)

-- name: client_run_triggers
-- jobd.client.Client.run_triggers. $1 resource, $2 trigger, $3 primary keys (JSON text
-- array), $4 actor (JSON text or NULL), $5 tenant, $6-$9 as client_run_trigger's.
-- Returns bigint[].
SELECT {schema}.run_triggers($1::text, $2::text, $3::text::jsonb, $4::text::jsonb, $5::text,
                             $6::text::jsonb, make_interval(secs => $7::float8),
                             $8::text::timestamptz, $9::int)

-- name: client_run_schedule
-- jobd.client.Client.schedule. $1 resource, $2 schedule name, $3 input (JSON text or
-- NULL), $4 actor (JSON text or NULL), $5 tenant, $6 schedule_in in seconds (float8 or
-- NULL), $7 scheduled_at (ISO 8601 text with an offset, or NULL), $8 priority (int or NULL).
SELECT {schema}.run_schedule($1::text, $2::text, $3::text::jsonb, $4::text::jsonb, $5::text,
                             make_interval(secs => $6::float8), $7::text::timestamptz,
                             $8::int)
