-- The web console's reads (jobd/console/queries.py). Every one stays on an index over a
-- jobs table of millions of rows: incomplete jobs through the partial indexes the engine
-- keeps (jobs_fetch, jobs_stage, jobs_executing, jobs_worker_pending), ended jobs only
-- within a window of time (jobs_terminal), lists by keyset on the primary key. Job
-- detail, retry, cancel, queues and nodes reuse ops.sql through jobd.engine.ops.

-- name: console_counts
-- Jobs by queue, worker and state: every incomplete job, and the jobs that ended in the
-- last $1 seconds (float8). Each arm repeats an index's predicate so that it uses it.
SELECT queue, worker, 'available' AS state, count(*)::bigint AS n
  FROM {schema}.jobs WHERE state = 'available' GROUP BY queue, worker
UNION ALL
SELECT queue, worker, state::text, count(*)::bigint
  FROM {schema}.jobs WHERE state IN ('scheduled', 'retryable') GROUP BY queue, worker, state
UNION ALL
SELECT queue, worker, 'executing', count(*)::bigint
  FROM {schema}.jobs WHERE state = 'executing' GROUP BY queue, worker
UNION ALL
SELECT queue, worker, state::text, count(*)::bigint
  FROM {schema}.jobs
 WHERE state IN ('completed', 'cancelled', 'discarded')
   AND coalesce(completed_at, cancelled_at, discarded_at) > now() - make_interval(secs => $1)
 GROUP BY queue, worker, state

-- name: console_throughput
-- Jobs that ended in the last $1 minutes (int), per minute (minutes ago, 0 = this one)
-- and outcome: succeeded, failed (discarded, or completed by on_error: `handled`),
-- cancelled.
SELECT floor(extract(epoch FROM now() - coalesce(completed_at, cancelled_at, discarded_at))
             / 60)::int AS minute,
       CASE WHEN state = 'cancelled' THEN 'cancelled'
            WHEN state = 'discarded' OR meta ? 'handled' THEN 'failed'
            ELSE 'succeeded' END AS outcome,
       count(*)::bigint AS n
  FROM {schema}.jobs
 WHERE state IN ('completed', 'cancelled', 'discarded')
   AND coalesce(completed_at, cancelled_at, discarded_at) > now() - make_interval(mins => $1)
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
