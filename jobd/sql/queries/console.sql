-- The web console's reads (jobd/console/queries.py). Every one stays on an index over a
-- jobs table of millions of rows: incomplete jobs through the partial indexes the engine
-- keeps (jobs_fetch, jobs_stage, jobs_executing, jobs_worker_pending), ended jobs only
-- within a window of time (jobs_terminal), lists by keyset on the primary key. Job
-- detail, retry, cancel, queues and nodes reuse ops.sql through jobd.engine.ops.

-- name: console_read_settings
-- Run first in the transaction of console_counts and console_throughput (no parameters).
-- The planner has no statistics on the ended jobs' time (jobs_terminal is a partial
-- expression index: Postgres keeps no whole-table statistics for it), so it guesses that
-- a third of the ended jobs ended in the last hour and reads the whole table (measured:
-- 150 ms over a million jobs, where the index answers in under a millisecond). Each arm
-- has an index that answers it: no sequential scan, and no parallel workers (starting
-- them costs more than the few rows read).
SET LOCAL enable_seqscan = off; SET LOCAL max_parallel_workers_per_gather = 0;
SET LOCAL jit = off

-- name: console_counts
-- Jobs by queue, worker and state: every incomplete job, and the jobs that ended in the
-- last $1 seconds (float8). Each arm repeats an index's predicate, and each ended state
-- is its own arm with `state = '<state>'`, so that jobs_terminal is walked from
-- (state, now - $1) on instead of read whole (an `IN` of all three is its predicate, and
-- the planner drops it from the index condition).
SELECT queue, worker, 'available' AS state, count(*)::bigint AS n
  FROM {schema}.jobs WHERE state = 'available' GROUP BY queue, worker
UNION ALL
SELECT queue, worker, state::text, count(*)::bigint
  FROM {schema}.jobs WHERE state IN ('scheduled', 'retryable') GROUP BY queue, worker, state
UNION ALL
SELECT queue, worker, 'executing', count(*)::bigint
  FROM {schema}.jobs WHERE state = 'executing' GROUP BY queue, worker
UNION ALL
SELECT queue, worker, 'completed', count(*)::bigint
  FROM {schema}.jobs
 WHERE state = 'completed'
   AND coalesce(completed_at, cancelled_at, discarded_at) > now() - make_interval(secs => $1)
 GROUP BY queue, worker
UNION ALL
SELECT queue, worker, 'discarded', count(*)::bigint
  FROM {schema}.jobs
 WHERE state = 'discarded'
   AND coalesce(completed_at, cancelled_at, discarded_at) > now() - make_interval(secs => $1)
 GROUP BY queue, worker
UNION ALL
SELECT queue, worker, 'cancelled', count(*)::bigint
  FROM {schema}.jobs
 WHERE state = 'cancelled'
   AND coalesce(completed_at, cancelled_at, discarded_at) > now() - make_interval(secs => $1)
 GROUP BY queue, worker

-- name: console_throughput
-- Jobs that ended in the last $1 minutes (int), per minute (minutes ago, 0 = this one)
-- and outcome: succeeded, failed (discarded, or completed by on_error: `handled`),
-- cancelled. One arm per ended state, as in console_counts.
SELECT floor(extract(epoch FROM now() - ended) / 60)::int AS minute, outcome,
       count(*)::bigint AS n
  FROM (SELECT completed_at AS ended,
               CASE WHEN meta ? 'handled' THEN 'failed' ELSE 'succeeded' END AS outcome
          FROM {schema}.jobs
         WHERE state = 'completed'
           AND coalesce(completed_at, cancelled_at, discarded_at)
               > now() - make_interval(mins => $1)
        UNION ALL
        SELECT discarded_at, 'failed'
          FROM {schema}.jobs
         WHERE state = 'discarded'
           AND coalesce(completed_at, cancelled_at, discarded_at)
               > now() - make_interval(mins => $1)
        UNION ALL
        SELECT cancelled_at, 'cancelled'
          FROM {schema}.jobs
         WHERE state = 'cancelled'
           AND coalesce(completed_at, cancelled_at, discarded_at)
               > now() - make_interval(mins => $1)) AS ended
 GROUP BY 1, 2

-- name: console_max_id
-- The newest job's id (0 when there is none); no parameters.
SELECT coalesce(max(id), 0) FROM {schema}.jobs

-- name: console_jobs
-- One page of jobs, newest first, after the keyset $7 (the last id shown; NULL: the
-- first page) and from id $9 on (NULL: no floor; a filtered page looks at a bounded
-- window of ids, see jobd/console/data.py). Filters, each NULL for any: $1 state, $2
-- queue, $3 worker, $4 text in any error (case-insensitive), $5 the row's primary key
-- (jsonb object, = args.pk), $6 tenant (args.tenant), $10 states (text[]: a bulk
-- action's, the states it can change). $8 page size. `last_error` is the newest error's
-- last line.
SELECT id, state::text AS state,
       CASE state WHEN 'completed' THEN CASE WHEN meta ? 'handled' THEN 'handled'
                                             ELSE 'succeeded' END
                  WHEN 'discarded' THEN 'failed' WHEN 'cancelled' THEN 'cancelled' END
         AS outcome,
       queue, worker, attempt, max_attempts, args -> 'pk' AS pk, args ->> 'tenant' AS tenant,
       inserted_at, scheduled_at, attempted_at,
       coalesce(completed_at, cancelled_at, discarded_at) AS ended_at,
       left(regexp_replace(rtrim(errors[cardinality(errors)] ->> 'error', E'\n '), '^.*\n', ''), 200)
         AS last_error
  FROM {schema}.jobs
 WHERE ($1::text IS NULL OR state::text = $1)
   AND ($2::text IS NULL OR queue = $2)
   AND ($3::text IS NULL OR worker = $3)
   AND ($4::text IS NULL OR strpos(lower(array_to_string(errors::text[], ' ')), lower($4)) > 0)
   AND ($5::jsonb IS NULL OR args -> 'pk' = $5::jsonb)
   AND ($6::text IS NULL OR args ->> 'tenant' = $6)
   AND ($7::bigint IS NULL OR id < $7)
   AND ($9::bigint IS NULL OR id >= $9)
   AND ($10::text[] IS NULL OR state::text = ANY($10::text[]))
 ORDER BY id DESC
 LIMIT $8

-- name: console_row_jobs
-- A row's jobs, newest first, at most $4: the jobs of the workers $1 (text[]) whose
-- args.pk is $2 (jsonb object), of tenant $3 (NULL: any), with ids in [$5, $6); and,
-- wherever they are, the jobs that hold the row's unique key now (incomplete, or held
-- after they ended: jobs_uniq_key), whose keys are the prefixes $7 (text[], one per
-- trigger: jobd.triggers.jobs.key_prefix) and the JSON array of the key's values in the
-- columns' order $8 (text[]), as the scheduler and the SQL functions write them.
WITH found AS (
  SELECT j.* FROM {schema}.jobs AS j
   WHERE j.worker = ANY($1::text[]) AND j.args -> 'pk' = $2::jsonb
     AND ($3::text IS NULL OR j.args ->> 'tenant' = $3)
     AND j.id >= $5 AND j.id < $6
  UNION
  SELECT j.* FROM {schema}.jobs AS j
   WHERE j.uniq_key = ANY (
           SELECT prefix || (SELECT jsonb_agg($2::jsonb -> c ORDER BY n)
                               FROM unnest($8::text[]) WITH ORDINALITY AS k(c, n))::text
             FROM unnest($7::text[]) AS prefix)
)
SELECT id, state::text AS state, worker, queue, attempt, max_attempts,
       inserted_at, coalesce(completed_at, cancelled_at, discarded_at) AS ended_at,
       uniq_key IS NOT NULL AS holds_key,
       left(regexp_replace(rtrim(errors[cardinality(errors)] ->> 'error', E'\n '), '^.*\n', ''), 200)
         AS last_error
  FROM found
 ORDER BY id DESC
 LIMIT $4

-- name: console_row_check
-- A row by primary key ($1, jsonb object, converted to the key's column types) as jsonb,
-- with one boolean per condition ({checks}: the trigger's and its read's `where`, split
-- at their top-level ANDs, each compiled by jobd.where over alias t).
SELECT to_jsonb(t) AS record, {checks}
  FROM jsonb_populate_record(NULL::{table}, $1::jsonb) AS w
  JOIN {table} AS t ON {pk_join}

-- name: console_last_ticks
-- The cron ledger: the last tick enqueued per cron entry $1 (text[]).
SELECT name, last_tick FROM {schema}.crons WHERE name = ANY($1::text[])
