-- Insert, fetch and acknowledge jobs: the engine's hot path.
-- Every ack carries the fence `state = 'executing' AND attempted_by = <node> AND attempt =
-- <attempt>`: an attempt whose claim was lost (rescued and claimed again) matches nothing.
-- Acks write the state test as `state::text = 'executing'` on purpose: in that form it
-- does not imply the predicate of the partial index jobs_executing, so the planner cannot
-- use that index. It otherwise would whenever statistics say few jobs execute (the common
-- case at ANALYZE time), walking every live and dead entry of this node for each acked id
-- in a nested loop: measured 700 ms for one 600-job batch instead of 8 ms by primary key.
-- An ack keeps uniq_key only while the new state still blocks: incomplete states always
-- do, a terminal state only when uniq_hold names it. Terminal times (completed_at, ...)
-- and the next run of a retry or snooze are clock_timestamp(): the moment the attempt
-- ended, not the start of a transaction the worker may have held since it began.

-- name: insert_jobs
-- Bulk insert, one row per array position. $1 worker text[], $2 queue text[], $3 args,
-- $4 meta (text[] of JSON objects), $5 tags (text[] of JSON arrays of strings, NULL = none),
-- $6 priority int[], $7 max_attempts int[], $8 scheduled_at timestamptz[] (NULL = now),
-- $9 uniq_key text[], $10 uniq_hold (text[] of JSON objects), $11 notify channel (text),
-- $12 notify (bool). JSON travels as text: asyncpg would read a list as an array dimension.
-- Conflicting unique keys are skipped; returns the ids inserted. One pg_notify per distinct
-- queue that got an available job (Postgres folds duplicates within a transaction).
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                       $6::int[], $7::int[], $8::timestamptz[], $9::text[], $10::text[])
    AS i(worker, queue, args, meta, tags, priority, max_attempts, scheduled_at, uniq_key,
         uniq_hold)
), ins AS (
  INSERT INTO {schema}.jobs (state, queue, worker, args, meta, tags, priority, max_attempts,
                             scheduled_at, uniq_key, uniq_hold)
  SELECT CASE WHEN i.scheduled_at > now() THEN 'scheduled' ELSE 'available' END::{schema}.job_state,
         i.queue, i.worker, i.args::jsonb, i.meta::jsonb,
         coalesce(ARRAY(SELECT jsonb_array_elements_text(i.tags::jsonb)), '{}'), i.priority,
         i.max_attempts, coalesce(i.scheduled_at, now()), i.uniq_key, i.uniq_hold::jsonb
  FROM input AS i
  ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
  RETURNING id, queue, state
), notified AS (
  SELECT count(pg_notify($11, q.queue)) AS n
  FROM (SELECT DISTINCT queue FROM ins WHERE state = 'available') AS q
  WHERE $12::bool
)
SELECT ins.id FROM ins CROSS JOIN notified ORDER BY ins.id

-- name: ack_and_fetch
-- The producer's hot path, and the only claim: complete the jobs $4 (ids bigint[]) at
-- attempts $5 (int[]) of node $3, and claim up to $2 available jobs of queue $1 for it, in
-- priority, schedule, id order, in ONE statement (one round trip, one commit). The two
-- UPDATEs touch disjoint rows (executing vs available). The completion is ack_completed's
-- (same fence, same shape). $6 (text[]) names the workers whose jobs this node claims
-- (the ones it knows, but paused ones): jobs of other workers wait, available, for a node
-- that knows them (a rolling deploy, a removed trigger). $7 (int) is the queue's
-- global_limit: NULL for none, else the claim takes at most that minus the jobs of the
-- queue executing anywhere in the cluster; run it then after `lock_queue` in the same
-- transaction, so the count and the claims of other nodes' fetchers do not interleave.
-- The MATERIALIZED claim CTE is a fence: the lock and LIMIT are evaluated once, on their
-- own, so exactly the rows locked there (at most $2, skipping rows another fetcher holds)
-- are updated. Folded into the UPDATE as a plain `IN (subquery)`, the planner may re-run
-- the LIMIT subquery or join it in ways that claim more or other rows than were locked.
-- Returns the claimed jobs (acked = false, then the Job's columns in order) and one row
-- per completed id (acked = true, other columns NULL).
WITH a AS MATERIALIZED (
  SELECT u.id, u.attempt, $3::text AS node, 'executing'::{schema}.job_state AS state
  FROM unnest($4::bigint[], $5::int[]) AS u(id, attempt)
), acked AS (
  UPDATE {schema}.jobs AS j
  SET state = 'completed', completed_at = clock_timestamp(),
      uniq_key = CASE WHEN j.uniq_hold ? 'completed' THEN j.uniq_key END
  FROM a
  WHERE j.id = a.id AND j.attempt = a.attempt AND j.attempted_by = a.node
    AND j.state = a.state
  RETURNING j.id
), claim AS MATERIALIZED (
  SELECT id FROM {schema}.jobs
  WHERE state = 'available' AND queue = $1 AND worker = ANY($6::text[])
  ORDER BY priority, scheduled_at, id
  LIMIT CASE WHEN $7::int IS NULL THEN $2::int ELSE greatest(0, least($2::int, $7::int - (
    SELECT count(*) FROM {schema}.jobs WHERE state = 'executing' AND queue = $1))) END
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE {schema}.jobs AS j
  SET state = 'executing', attempt = j.attempt + 1, attempted_at = now(), attempted_by = $3
  FROM claim
  WHERE j.id = claim.id
  RETURNING j.id, j.queue, j.worker, j.args, j.meta, j.tags, j.attempt, j.max_attempts,
            j.priority, j.inserted_at, j.scheduled_at, j.attempted_at, j.errors
)
SELECT false AS acked, c.* FROM claimed AS c
UNION ALL
SELECT true, acked.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM acked

-- name: ack_and_claim
-- ack_and_fetch for a queue without a global_limit, with the claim's size written into
-- the text ({demand}, an int put there by jobd.sql.with_demand) instead of a parameter:
-- Postgres plans a statement whose LIMIT is a parameter again at every execution (its
-- generic plan, costed for an unknown LIMIT, never wins), about 0.3-0.5 ms of a backend's
-- CPU per fetch; with the size in the text each size keeps one cached plan. $1 queue, $2
-- node id, $3 ids to complete (bigint[]), $4 their attempts (int[]), $5 workers (text[]).
-- Same fence, same shape, same result rows as ack_and_fetch.
WITH a AS MATERIALIZED (
  SELECT u.id, u.attempt, $2::text AS node, 'executing'::{schema}.job_state AS state
  FROM unnest($3::bigint[], $4::int[]) AS u(id, attempt)
), acked AS (
  UPDATE {schema}.jobs AS j
  SET state = 'completed', completed_at = clock_timestamp(),
      uniq_key = CASE WHEN j.uniq_hold ? 'completed' THEN j.uniq_key END
  FROM a
  WHERE j.id = a.id AND j.attempt = a.attempt AND j.attempted_by = a.node
    AND j.state = a.state
  RETURNING j.id
), claim AS MATERIALIZED (
  SELECT id FROM {schema}.jobs
  WHERE state = 'available' AND queue = $1 AND worker = ANY($5::text[])
  ORDER BY priority, scheduled_at, id
  LIMIT {demand}
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE {schema}.jobs AS j
  SET state = 'executing', attempt = j.attempt + 1, attempted_at = now(), attempted_by = $2
  FROM claim
  WHERE j.id = claim.id
  RETURNING j.id, j.queue, j.worker, j.args, j.meta, j.tags, j.attempt, j.max_attempts,
            j.priority, j.inserted_at, j.scheduled_at, j.attempted_at, j.errors
)
SELECT false AS acked, c.* FROM claimed AS c
UNION ALL
SELECT true, acked.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM acked

-- name: release_unknown_claims
-- After a fetch failed on a lost connection, its claim may have committed with the reply
-- lost: those jobs are `executing` for this node, but no task of it runs them, and the
-- lifeline never rescues a live node's jobs. Put them back (and notify the queue). $1
-- queue, $2 node id, $3 ids this node knows (running, or their outcome waiting to be
-- written; bigint[]), $4 the insert notification channel.
UPDATE {schema}.jobs AS j
SET state = 'available', attempt = j.attempt - 1, scheduled_at = now(),
    attempted_at = NULL, attempted_by = NULL
WHERE j.state = 'executing' AND j.queue = $1 AND j.attempted_by = $2
  AND NOT (j.id = ANY($3::bigint[]))
RETURNING j.id, pg_notify($4, j.queue)

-- name: lock_queue
-- Transaction advisory lock serializing global_limit fetches of one queue. $1 lock key
-- (bigint, derived from the schema and queue name).
SELECT pg_advisory_xact_lock($1)

-- name: ack_completed
-- Complete many jobs at once. $1 job ids bigint[], $2 their attempts int[], $3 node id.
-- Returns the ids that passed the fence.
-- Shape matters: the planner's estimate for "executing jobs of this node" is always about
-- one row (a node id is new to the statistics), so with the fence as plain filters on
-- jobs it picks a nested loop that rescans the id list for every executing row (measured:
-- 0.3-5 s per 1000-job batch). In the MATERIALIZED CTE the fence values are columns, so
-- the fence becomes join conditions, jobs keeps its true size estimate, and the join is a
-- primary-key probe per id (or one hash join). Postgres re-checks all of them against a
-- row changed concurrently (rescued), which is then skipped.
WITH a AS MATERIALIZED (
  SELECT u.id, u.attempt, $3::text AS node, 'executing'::{schema}.job_state AS state
  FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt)
)
UPDATE {schema}.jobs AS j
SET state = 'completed', completed_at = clock_timestamp(),
    uniq_key = CASE WHEN j.uniq_hold ? 'completed' THEN j.uniq_key END
FROM a
WHERE j.id = a.id AND j.attempt = a.attempt AND j.attempted_by = a.node AND j.state = a.state
RETURNING j.id

-- name: ack_completed_one
-- Complete one job (JobContext.complete_in, in the worker's transaction). $1 id,
-- $2 attempt, $3 node id, $4 error entry to keep (jsonb, NULL = none). With an error the
-- job is `handled`: its last attempt failed and a follow-up (a trigger's on_error)
-- handled it; meta.handled says so, and the unique key is held as uniq_hold's `handled`
-- says (the row rests), not as `completed`. Returns the id when fenced in.
UPDATE {schema}.jobs AS j
SET state = 'completed', completed_at = clock_timestamp(),
    errors = CASE WHEN $4::jsonb IS NULL THEN j.errors ELSE array_append(j.errors, $4::jsonb) END,
    meta = CASE WHEN $4::jsonb IS NULL THEN j.meta ELSE j.meta || '{"handled": true}' END,
    uniq_key = CASE WHEN j.uniq_hold ? (CASE WHEN $4::jsonb IS NULL THEN 'completed'
                                             ELSE 'handled' END) THEN j.uniq_key END
WHERE j.id = $1 AND j.state::text = 'executing' AND j.attempted_by = $3 AND j.attempt = $2
RETURNING j.id

-- name: ack_error
-- A failed attempt: to retryable at now + $4 seconds, or discarded (no attempts left, or
-- Discard). $1 id, $2 attempt, $3 node id, $4 backoff seconds (float8), $5 new state
-- ('retryable' or 'discarded'), $6 error entry (jsonb). Returns the id when fenced in.
UPDATE {schema}.jobs AS j
SET state = $5::text::{schema}.job_state,
    scheduled_at = CASE WHEN $5 = 'retryable' THEN clock_timestamp() + make_interval(secs => $4)
                        ELSE j.scheduled_at END,
    discarded_at = CASE WHEN $5 = 'discarded' THEN clock_timestamp() END,
    errors = array_append(j.errors, $6::jsonb),
    uniq_key = CASE WHEN $5 = 'retryable' OR j.uniq_hold ? $5 THEN j.uniq_key END
WHERE j.id = $1 AND j.state::text = 'executing' AND j.attempted_by = $3 AND j.attempt = $2
RETURNING j.id

-- name: ack_cancel
-- Cancel an executing job. $1 id, $2 attempt, $3 node id, $4 error entry (jsonb: reason).
UPDATE {schema}.jobs AS j
SET state = 'cancelled', cancelled_at = clock_timestamp(),
    errors = array_append(j.errors, $4::jsonb),
    uniq_key = CASE WHEN j.uniq_hold ? 'cancelled' THEN j.uniq_key END
WHERE j.id = $1 AND j.state::text = 'executing' AND j.attempted_by = $3 AND j.attempt = $2
RETURNING j.id

-- name: ack_snooze
-- Snooze: scheduled again at now + $4 seconds without using up an attempt (max_attempts
-- grows by one, as in Oban) and meta.snoozed counts the snoozes. $1 id, $2 attempt,
-- $3 node id, $4 seconds (float8). The unique key stays (scheduled blocks).
UPDATE {schema}.jobs AS j
SET state = 'scheduled', scheduled_at = clock_timestamp() + make_interval(secs => $4),
    max_attempts = j.max_attempts + 1,
    meta = j.meta || jsonb_build_object('snoozed', coalesce((j.meta->>'snoozed')::int, 0) + 1)
WHERE j.id = $1 AND j.state::text = 'executing' AND j.attempted_by = $3 AND j.attempt = $2
RETURNING j.id

-- name: release_jobs
-- Graceful stop: jobs still running when the grace period ends go back to available,
-- their attempt not counted, and their queue is notified (another node may run them).
-- $1 ids bigint[], $2 attempts int[], $3 node id, $4 the insert notification channel.
-- Same shape as ack_completed, for the same reason.
WITH a AS MATERIALIZED (
  SELECT u.id, u.attempt, $3::text AS node, 'executing'::{schema}.job_state AS state
  FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt)
)
UPDATE {schema}.jobs AS j
SET state = 'available', attempt = j.attempt - 1, scheduled_at = now(),
    attempted_at = NULL, attempted_by = NULL
FROM a
WHERE j.id = a.id AND j.attempt = a.attempt AND j.attempted_by = a.node AND j.state = a.state
RETURNING j.id, pg_notify($4, j.queue)

-- name: drain_stage_due
-- Move scheduled and retryable jobs whose time has come to available (drain for tests;
-- the leader's stager does the same in production). $1 queues text[] (NULL = all).
-- Returns the queues that got jobs.
UPDATE {schema}.jobs AS j
SET state = 'available'
WHERE j.state IN ('scheduled', 'retryable') AND j.scheduled_at <= now()
  AND ($1::text[] IS NULL OR j.queue = ANY($1))
RETURNING j.queue

-- name: drain_queues
-- Queues that have available jobs of the workers $2 (text[]: the ones the drain runs),
-- optionally only among $1 (text[], NULL = all).
SELECT DISTINCT queue FROM {schema}.jobs
WHERE state = 'available' AND ($1::text[] IS NULL OR queue = ANY($1))
  AND worker = ANY($2::text[])
