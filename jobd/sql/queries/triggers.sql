-- Triggers: catalog look-ups of the user's tables, the scheduler's set-based enqueue, the
-- worker's re-read, and the clean-up of deleted triggers (programmatic enqueues are the
-- SQL API's functions, functions.sql).
--
-- Besides `{schema}` (jobd's schema), the templates below hold placeholders that
-- jobd.triggers.sqlgen fills with SQL built ONLY from quoted identifiers (jobd.sql.ident),
-- compiled `where` expressions (jobd.where) and catalog type names
-- (format_type): {table}, {filter}, {order}, ... Runtime values are always `$n`.
-- The unique key of a trigger worker job is `<key prefix> || jsonb_build_array(<pk>)::text`
-- in every path, computed by Postgres from the row itself, so the scheduler and the API
-- build the same string for any key type.

-- name: trigger_table_info
-- Columns (with their SQL type names) and primary key of one relation.
-- $1: the relation as SQL text with quoted identifiers ('"public"."orders"' or '"orders"',
--     the latter resolved via the search_path). One row always: relid NULL when no such
--     relation exists; primary_key empty when it has none.
SELECT rel.relid,
       ARRAY(
         SELECT a.attname::text FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = rel.relid AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum
       ) AS columns,
       ARRAY(
         SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = rel.relid AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum
       ) AS types,
       ARRAY(
         SELECT a.attname::text
           FROM pg_catalog.pg_index i
          CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indrelid = rel.relid AND i.indisprimary
          ORDER BY k.ord
       ) AS primary_key
  FROM (SELECT pg_catalog.to_regclass($1::text) AS relid) AS rel

-- name: trigger_scan_settings
-- Run first in the transaction of a single-statement scan (no parameters). jit: the
-- statement's cost estimate easily passes jit_above_cost on a big table, and compiling the
-- plan then costs more than it saves (measured: ~0.6 s of a 4 s run on 100,000 rows).
-- synchronous_commit: the commit need not wait for the WAL flush; a scan lost in a crash
-- is enqueued again by the next run (its rows still match), and a worker's (synchronous)
-- completion of one of these jobs flushes this WAL first.
SET LOCAL jit = off; SET LOCAL synchronous_commit = off

-- name: trigger_scan_page_settings
-- Run first in the transaction of each keyset page (no parameters): as
-- trigger_scan_settings, and the page's scan stays a walk of an index that stops at the
-- page's LIMIT. With stale statistics (a big table never analyzed, autovacuum off) the
-- planner estimates few matching rows and would otherwise read the whole table for EVERY
-- page: a sequential scan and a sort, or a bitmap scan of the rest of the key range and a
-- sort. Sorts stay allowed: with an index on the `where` columns and few matching rows,
-- reading them by that index and sorting them beats walking the whole primary key.
-- Measured plans: tests/integration/triggers/test_scan_plans.py.
SET LOCAL jit = off; SET LOCAL synchronous_commit = off;
SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off

-- name: trigger_scan_enqueue
-- One statement of a trigger's scheduler run (one keyset page, or the whole scan): scan the
-- rows matching {filter} in {order}, insert one worker job per row; a row whose unique key
-- a job holds gets none (ON CONFLICT DO NOTHING, which also settles races with concurrent
-- inserters). With a record_limit ($10 not NULL) rows holding a key are first left out by
-- a probe (NOT EXISTS), so that the LIMIT counts only new jobs; without one the probe is
-- skipped (`$10 IS NULL`: a custom plan drops it, a generic one keeps it but never runs
-- it): ON CONFLICT already looks each key up, and a second look-up per row made the scan
-- 8-20% slower (bench/scheduler.py, variant jobd-limit). No row comes back: only the
-- counts and the last primary key of the page ({last} for the next page). Runs after
-- trigger_scan_settings or trigger_scan_page_settings, in the same transaction.
-- $1 worker name, $2 queue, $3 priority, $4 max_attempts, $5 uniq_hold (jsonb),
-- $6 args common to every job (jsonb: actor, input, extra), $7 unique key prefix
-- ('<worker>:<tenant>:'), $8 the tenant stored in the jobs (text, NULL: none or the row's),
-- $9 most rows scanned (bigint, NULL: all), $10 most jobs inserted (bigint, NULL: no limit),
-- $11 notify channel, $12 tags (text[]); $13.. the primary key's column names (the JSON keys of args.pk),
-- then the values {filter} uses (tenant attribute value, keyset position), as it numbers them.
WITH scan AS MATERIALIZED (
  SELECT {scan_columns}
    FROM {table} AS t
   WHERE {filter}
   ORDER BY {order}
   LIMIT $9::bigint
), keyed AS (
  SELECT p.*, $7::text || jsonb_build_array({key_values})::text AS uniq_key
    FROM scan AS p
), picked AS (
  -- OFFSET 0 keeps the probe a per-row lookup in jobs_uniq_key: as an anti-join the
  -- planner, with stale statistics on a jobs table growing page by page, hashes the
  -- whole jobs table for every page.
  SELECT p.* FROM keyed AS p
   WHERE $10::bigint IS NULL
      OR NOT EXISTS (SELECT 1 FROM {schema}.jobs AS j WHERE j.uniq_key = p.uniq_key OFFSET 0)
   ORDER BY {scan_order}
   LIMIT $10::bigint
), ins AS (
  INSERT INTO {schema}.jobs (queue, worker, args, priority, max_attempts, uniq_key, uniq_hold,
                             tags)
  SELECT $2::text, $1::text,
         $6::jsonb || jsonb_build_object('pk', jsonb_build_object({pk_object}),
                                         'tenant', {job_tenant}),
         $3::int, $4::int, p.uniq_key, $5::jsonb, $12::text[]
    FROM picked AS p
   ORDER BY {scan_order}
  ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
  RETURNING 1
), notified AS (
  SELECT count(pg_notify($11::text, $2::text)) AS n FROM (SELECT 1 FROM ins LIMIT 1) AS x
)
SELECT (SELECT count(*) FROM scan) AS scanned, (SELECT count(*) FROM ins) AS enqueued{last}
  FROM notified

-- name: trigger_reread
-- The worker's re-read of its row: by primary key, with the trigger's and the read's
-- filters applied ({filter}), under FOR UPDATE when lock_for_update ({lock}).
-- $1 the primary key (jsonb object, converted to the column types by jsonb_populate_record).
SELECT {columns}
  FROM jsonb_populate_record(NULL::{table}, $1::jsonb) AS w
  JOIN {table} AS t ON {pk_join}
 WHERE {filter}
{lock}

-- name: trigger_cancel_jobs
-- Cancel the jobs of deleted triggers and schedules that are not running.
-- $1 worker names (text[]), $2 error entry (jsonb: the reason). Returns how many.
WITH cancelled AS (
  UPDATE {schema}.jobs AS j
     SET state = 'cancelled', cancelled_at = clock_timestamp(),
         errors = array_append(j.errors, $2::jsonb),
         uniq_key = CASE WHEN j.uniq_hold ? 'cancelled' THEN j.uniq_key END
   WHERE j.worker = ANY($1::text[]) AND j.state IN ('available', 'scheduled', 'retryable')
  RETURNING 1
)
SELECT count(*) FROM cancelled

-- name: trigger_move_jobs
-- Move the waiting jobs of workers to the queue the configuration names for them now (a
-- reload or a rolling deploy moved a trigger to another queue; the old one may have no
-- producer any more). Running jobs finish where they are. $1 worker names (text[]),
-- $2 their queues (text[], same order), $3 notify channel. One row per queue that got
-- jobs: the queue and how many.
WITH target AS (
  SELECT * FROM unnest($1::text[], $2::text[]) AS t(worker, queue)
), moved AS (
  UPDATE {schema}.jobs AS j SET queue = t.queue
  FROM target AS t
  WHERE j.worker = t.worker AND j.queue <> t.queue
    AND j.state IN ('available', 'scheduled', 'retryable')
  RETURNING j.queue
), per_queue AS (
  SELECT queue, count(*) AS moved FROM moved GROUP BY queue
)
SELECT queue, moved, pg_notify($3::text, queue) FROM per_queue
