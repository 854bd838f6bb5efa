-- Change-data triggers (a trigger's `events:`): the database objects jobd installs on a
-- resource's table, filled by jobd.triggers.events, and the catalog look-ups that
-- jobd.triggers.eventsync compares them with.
--
-- For each (trigger, event) jobd creates ONE function in its own schema, named
-- `jobd_<worker>_<event>_<hash>`, and a statement-level AFTER trigger of the same name on
-- the table (on each tenant's table with schema tenancy). The function enqueues the
-- statement's rows with ONE set-based INSERT ... SELECT from the transition table, shaped
-- as the scheduler's scan (trigger_scan_enqueue): the same args, unique key and
-- ON CONFLICT, so a row that has a job gets no second one. A trigger function takes no
-- bind parameters: the job's constants (worker, queue, priority, ...) are SQL literals
-- quoted by jobd.sql.ident.quote_literal, identifiers by quote_ident, the filters compiled
-- by jobd.where. Each object's COMMENT carries a hash of its definition, so drift is seen.

-- name: event_function
-- The enqueueing function of one (trigger, event). SECURITY DEFINER with a fixed
-- search_path: it runs with the rights of the role that installed it (jobd's), so the
-- application's role needs none on jobd's schema, and nothing in its session's
-- search_path can stand in for the objects named here (all schema-qualified).
-- {source}: the transition table the rows come from (jobd_new_rows; jobd_old_rows for
-- delete); {filter}: the trigger's `where` (and, for update with `columns`, "a listed
-- column changed") over those rows as `t`; {row_columns}: the key as k0.. (and tn, the
-- tenant attribute as text; old, the old row image for delete); {key_prefix}: the unique
-- key prefix ('<worker>:<tenant>:', the tenant being TG_TABLE_SCHEMA with schema
-- tenancy); {job_tenant}; {event}; {old}: `, 'old', p.old` for delete, else empty;
-- {tags}: the trigger's tags as a text[] literal.
-- The notification is sent once per statement that inserted a job (and Postgres folds
-- equal notifications of one transaction into one).
-- A statement of more than {expand_min} matching rows enqueues instead ONE expansion job
-- ({expand_worker} in {expand_queue}) that carries the rows' keys as arrays (one per key
-- column as the text of an array, {aggregates}: array_agg and array_out are the cheapest
-- way to collect and keep them, and exact for any type; they are collected in the same
-- pass that counts the rows, whatever the count), and the daemon
-- turns it into the rows' jobs with event_expand, ON CONFLICT as here: a bulk write then
-- costs the application one job row, not one per row (bench/events.py, write cost).
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {tag}
DECLARE
  jobd_rows bigint;
  jobd_keys jsonb;
  jobd_notified bigint;
BEGIN
  SELECT count(*), jsonb_build_object('event', {event}, 'tenant', {expand_tenant}, {aggregates})
    INTO jobd_rows, jobd_keys
    FROM {source} AS t
   WHERE {filter};
  IF jobd_rows = 0 THEN
    RETURN NULL;
  END IF;
  IF jobd_rows > {expand_min} THEN
    INSERT INTO {schema}.jobs (queue, worker, args, priority, max_attempts)
    VALUES ({expand_queue}, {expand_worker}, jobd_keys || jsonb_build_object('rows', jobd_rows),
            {priority}, {expand_attempts});
    PERFORM pg_notify({channel}, {expand_queue});
    RETURN NULL;
  END IF;
  WITH changed AS MATERIALIZED (
    SELECT {row_columns}
      FROM {source} AS t
     WHERE {filter}
  ), keyed AS (
    SELECT p.*, {key_prefix} || jsonb_build_array({key_values})::text AS uniq_key
      FROM changed AS p
  ), ins AS (
    INSERT INTO {schema}.jobs (queue, worker, args, priority, max_attempts, uniq_key, uniq_hold,
                               tags)
    SELECT {queue}, {worker},
           {args}::jsonb || jsonb_build_object('pk', jsonb_build_object({pk_object}),
                                               'tenant', {job_tenant}, 'event', {event}{old}),
           {priority}, {max_attempts}, p.uniq_key, {uniq_hold}::jsonb, {tags}::text[]
      FROM keyed AS p
     ORDER BY {key_values}
    ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
    RETURNING 1
  )
  SELECT count(pg_notify({channel}, {queue})) INTO jobd_notified
    FROM (SELECT 1 FROM ins LIMIT 1) AS x;
  RETURN NULL;
END
{tag}

-- name: event_trigger
-- The trigger of one (trigger, event) on one table: statement-level, AFTER, with the
-- transition tables the function reads ({transition}); one event per trigger, since
-- Postgres allows transition tables only on single-event triggers (and without a column
-- list, which is why `columns` is a filter inside the function).
CREATE TRIGGER {trigger} AFTER {event} ON {table}
  REFERENCING {transition}
  FOR EACH STATEMENT EXECUTE FUNCTION {function}()

-- name: event_lock
-- Installs and removals of one jobd schema's database triggers take turns (two daemons
-- starting on one configuration): $1 the advisory lock key (jobd.triggers.eventsync).
SELECT pg_advisory_xact_lock($1::bigint)

-- name: event_installed_functions
-- jobd's event functions in its schema and their comments. $1 jobd's schema (quoted).
SELECT p.proname::text AS name, pg_catalog.obj_description(p.oid, 'pg_proc') AS comment
  FROM pg_catalog.pg_proc AS p
 WHERE p.pronamespace = pg_catalog.to_regnamespace($1::text) AND p.proname LIKE 'jobd\_%'

-- name: event_installed_triggers
-- The database triggers that call jobd's event functions: name, table (oid and quoted
-- name), function, comment, and whether it is enabled ('D': ALTER TABLE ... DISABLE
-- TRIGGER). $1 jobd's schema (quoted).
SELECT tg.tgname::text AS name, tg.tgrelid::oid AS relid,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS table_sql,
       p.proname::text AS function, tg.tgenabled <> 'D' AS enabled,
       pg_catalog.obj_description(tg.oid, 'pg_trigger') AS comment
  FROM pg_catalog.pg_trigger AS tg
  JOIN pg_catalog.pg_proc AS p ON p.oid = tg.tgfoid
  JOIN pg_catalog.pg_class AS c ON c.oid = tg.tgrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE p.pronamespace = pg_catalog.to_regnamespace($1::text) AND NOT tg.tgisinternal
   AND p.proname LIKE 'jobd\_%'

-- name: event_relids
-- The oid of each table, as jobd names it in SQL (NULL: no such table). $1 the quoted
-- table names (text[]).
SELECT t.name, pg_catalog.to_regclass(t.name)::oid AS relid
  FROM unnest($1::text[]) AS t(name)

-- name: event_batch_read
-- The batch_read (batch.sql) of a batch of delete jobs: fence the jobs the same way; their
-- rows are gone, so each job's row is the old image it carries (args.old), typed as the
-- table's columns by jsonb_populate_record, in the worker_read's columns ({columns}, as
-- `t`), and never filtered again (the function applied `where` when it enqueued).
-- $1 job ids (bigint[]), $2 their attempts (int[]), $3 node id.
WITH wanted AS MATERIALIZED (
  SELECT u.id, u.attempt FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt)
), fenced AS MATERIALIZED (
  SELECT j.id, j.args -> 'old' AS old
    FROM wanted AS u
    JOIN {schema}.jobs AS j ON j.id = u.id
   WHERE j.attempt = u.attempt AND j.state = 'executing' AND j.attempted_by = $3::text
  {job_lock}
)
SELECT f.id AS jobd_fenced, f.id AS jobd_job_id, {columns}
  FROM fenced AS f
 CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, f.old) AS t

-- name: event_comment_function
-- The function's COMMENT: who it serves and the hash of its definition ({comment}, a
-- quoted constant ending in `definition <hash>`); and no EXECUTE for PUBLIC: nobody
-- needs it (Postgres checks it when a trigger is created, not when it fires), and a
-- SECURITY DEFINER function should not offer it.
COMMENT ON FUNCTION {function}() IS {comment};
REVOKE ALL ON FUNCTION {function}() FROM PUBLIC

-- name: event_comment_trigger
-- The trigger's COMMENT, as event_comment_function's.
COMMENT ON TRIGGER {trigger} ON {table} IS {comment}

-- name: event_drop_trigger
-- Remove a trigger jobd installed (its event or trigger left the configuration, or its
-- definition changed and it is created again).
DROP TRIGGER IF EXISTS {trigger} ON {table}

-- name: event_drop_function
-- Remove an event function no trigger of the configuration needs (after its triggers).
DROP FUNCTION IF EXISTS {function}()

-- name: event_expand
-- Turn an expansion job (event_function, a statement of many rows) into the rows' jobs:
-- the scan's INSERT (trigger_scan_enqueue) over the keys the job carries instead of a
-- table, ON CONFLICT as there. Run by jobd.triggers.expand in the transaction that
-- completes the expansion job, so the jobs and its end commit together.
-- {arrays}: each array the job carries ($1), unnested (the keys' array literals cast to
-- their column types, the tenants to text[], the old rows with jsonb_array_elements) and
-- zipped by ROWS FROM into the columns {names}: k0.. (the key columns; and tn, the
-- tenant; old, the old row image); {pk_object}, {key_values}, {job_tenant}, {old} as in
-- event_function. $1 the expansion job's args (jsonb), $2 queue, $3 worker name,
-- $4 args common to every job (jsonb), $5 priority, $6 max_attempts, $7 uniq_hold
-- (jsonb), $8 unique key prefix, $9 notify channel, $10 the tenant (schema tenancy),
-- $11 tags (text[]); $12.. the primary key's column names. Returns how many jobs it
-- inserted.
WITH src AS (
  SELECT e.* FROM ROWS FROM ({arrays}) WITH ORDINALITY AS e({names}, n)
), ins AS (
  INSERT INTO {schema}.jobs (queue, worker, args, priority, max_attempts, uniq_key, uniq_hold,
                             tags)
  SELECT $2::text, $3::text,
         $4::jsonb || jsonb_build_object('pk', jsonb_build_object({pk_object}),
                                         'tenant', {job_tenant}, 'event', $1::jsonb -> 'event'{old}),
         $5::int, $6::int, $8::text || jsonb_build_array({key_values})::text, $7::jsonb,
         $11::text[]
    FROM src AS p
   ORDER BY p.n
  ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
  RETURNING 1
)
SELECT count(*) AS enqueued,
       (SELECT count(pg_notify($9::text, $2::text)) FROM (SELECT 1 FROM ins LIMIT 1) AS x) AS n
  FROM ins
