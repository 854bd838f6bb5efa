-- Leader-side queries: node heartbeats, the leader lease, and the leader-only services
-- (stager, uniq-hold sweep, lifeline, pruner, cron ledger). Times compared across nodes
-- always come from the database clock: now(), or a `$now` the caller read from it.

-- name: node_beat
-- Register or refresh a node. $1 node id, $2 display name, $3 what it serves (json text:
-- {"workers": [...], "queues": [...]}, read by ops_waiting_for_worker).
-- `inserted` is true when the row did not exist (first beat, or deleted as dead meanwhile).
INSERT INTO {schema}.nodes AS n (id, name, started_at, heartbeat_at, meta)
VALUES ($1, $2, now(), now(), $3::text::jsonb)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
RETURNING (xmax = 0) AS inserted

-- name: node_unregister
-- Remove a node row on graceful shutdown. $1 node id.
DELETE FROM {schema}.nodes WHERE id = $1

-- name: db_now
-- The database clock, the one clock every node agrees on. No parameters.
SELECT clock_timestamp()

-- name: leader_acquire
-- Take or renew the lease in one upsert that only succeeds when we already hold it or it
-- has expired. $1 node id, $2 lease seconds (float).
-- Returns `leading` (we hold the lease now) and `remaining_s`: seconds until the current
-- holder's lease expires (from the snapshot before our upsert; NULL when there was none),
-- so a follower can try again right after it expires.
WITH up AS (
  INSERT INTO {schema}.leader AS l (name, node_id, elected_at, expires_at)
  VALUES ('jobd', $1, now(), now() + make_interval(secs => $2))
  ON CONFLICT (name) DO UPDATE
    SET node_id = excluded.node_id,
        elected_at = CASE WHEN l.node_id = excluded.node_id THEN l.elected_at ELSE now() END,
        expires_at = excluded.expires_at
    WHERE l.node_id = excluded.node_id OR l.expires_at <= now()
  RETURNING l.node_id
)
SELECT
  EXISTS (SELECT 1 FROM up) AS leading,
  (SELECT extract(epoch FROM expires_at - now())::float8
     FROM {schema}.leader WHERE name = 'jobd') AS remaining_s

-- name: leader_release
-- Give the lease up so another node takes over at once. $1 node id.
DELETE FROM {schema}.leader WHERE name = 'jobd' AND node_id = $1

-- name: stage_due
-- Move scheduled/retryable jobs whose time has come to available, one bounded batch, and
-- notify each affected queue once. $1 now (timestamptz; NULL: the statement's own
-- time), $2 batch size, $3 channel.
-- Returns one row per queue with the number of jobs staged there.
WITH due AS (
  SELECT id FROM {schema}.jobs
  WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= coalesce($1, now())
  ORDER BY scheduled_at, id
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), moved AS (
  UPDATE {schema}.jobs j SET state = 'available'
  FROM due WHERE j.id = due.id
  RETURNING j.queue
), per_queue AS (
  SELECT queue, count(*) AS staged FROM moved GROUP BY queue
)
SELECT queue, staged, pg_notify($3, queue) FROM per_queue

-- name: uniq_hold_sweep
-- Clear uniq_key on terminal jobs whose hold (seconds, in uniq_hold under the job's state,
-- or under `handled` for a completed job whose failure on_error handled) has passed, so the
-- key can be used again. $1 now (timestamptz; NULL: the statement's own time), $2 batch
-- size.
WITH expired AS (
  SELECT j.id FROM {schema}.jobs AS j
  CROSS JOIN LATERAL (
    SELECT CASE WHEN j.state = 'completed' AND j.meta ? 'handled' THEN 'handled'
                ELSE j.state::text END AS held_as
  ) AS h
  WHERE j.uniq_key IS NOT NULL
    AND j.state IN ('completed', 'cancelled', 'discarded')
    AND jsonb_typeof(j.uniq_hold -> h.held_as) = 'number'
    AND coalesce(j.completed_at, j.cancelled_at, j.discarded_at)
        + make_interval(secs => (j.uniq_hold ->> h.held_as)::float8)
        <= coalesce($1, now())
  LIMIT $2
  FOR UPDATE OF j SKIP LOCKED
)
UPDATE {schema}.jobs j SET uniq_key = NULL
FROM expired WHERE j.id = expired.id

-- name: lifeline_rescue
-- Rescue one bounded batch of executing jobs whose node is dead (heartbeat older than the
-- cutoff) or has no node row at all. A crash is not the job's failure: the job goes back
-- to available with its attempt not counted, meta.rescued counts the rescues and an error
-- entry says why. (The engine ends a job rescued more than engine.max_rescues times as a
-- final failure when it next claims it: see Producer.) The unique key stays: the job is
-- incomplete. Each rescued job's queue is notified (idle producers poll rarely).
-- $1 cutoff (timestamptz: heartbeats before it are dead), $2 batch size, $3 now,
-- $4 the insert notification channel.
WITH orphans AS (
  SELECT j.id, j.attempted_by FROM {schema}.jobs j
  WHERE j.state = 'executing'
    AND NOT EXISTS (
      SELECT 1 FROM {schema}.nodes n
      WHERE n.id = j.attempted_by AND n.heartbeat_at >= $1
    )
  ORDER BY j.id
  LIMIT $2
  FOR UPDATE OF j SKIP LOCKED
), rescued AS (
  UPDATE {schema}.jobs j SET
    state = 'available', attempt = j.attempt - 1, scheduled_at = $3,
    attempted_at = NULL, attempted_by = NULL,
    meta = j.meta || jsonb_build_object(
      'rescued', coalesce((j.meta ->> 'rescued')::int, 0) + 1),
    errors = array_append(j.errors, jsonb_build_object(
      'at', $3::timestamptz,
      'attempt', j.attempt,
      'error', 'rescued: node ' || coalesce(o.attempted_by, '?') || ' stopped heartbeating',
      'kind', 'rescued'))
  FROM orphans AS o WHERE j.id = o.id
  RETURNING j.id, j.queue, j.worker, j.attempt + 1 AS attempt, o.attempted_by,
            (j.meta ->> 'rescued')::int AS rescued
)
SELECT r.*, pg_notify($4, r.queue) FROM rescued AS r

-- name: lifeline_dead_nodes
-- Delete node rows whose heartbeat is older than the cutoff and that hold no executing job
-- any more (their jobs were rescued first). $1 cutoff (timestamptz).
DELETE FROM {schema}.nodes n
WHERE n.heartbeat_at < $1
  AND NOT EXISTS (
    SELECT 1 FROM {schema}.jobs j WHERE j.state = 'executing' AND j.attempted_by = n.id
  )
RETURNING n.id, n.heartbeat_at

-- name: prune_state
-- Delete one bounded batch of terminal jobs of one state that finished before a cutoff.
-- $1 state (text: completed, cancelled or discarded), $2 cutoff (timestamptz), $3 batch size.
DELETE FROM {schema}.jobs
WHERE id IN (
  SELECT id FROM {schema}.jobs
  WHERE state = $1::text::{schema}.job_state
    AND coalesce(completed_at, cancelled_at, discarded_at) < $2
  LIMIT $3
)

-- name: cron_cluster_up_since
-- Since when the cluster has been running: the start of its oldest live node (NULL: no
-- live node row). A cron tick after it is on time, one before it was missed while no
-- daemon ran. $1 cutoff (timestamptz: heartbeats before it are dead).
SELECT min(started_at) FROM {schema}.nodes WHERE heartbeat_at >= $1

-- name: cron_ledger_init
-- First sight of a cron entry: its ledger starts at now (no past ticks run).
-- $1 entry name, $2 now (timestamptz).
INSERT INTO {schema}.crons (name, last_tick, updated_at) VALUES ($1, $2, now())
ON CONFLICT (name) DO NOTHING

-- name: cron_ledger_lock
-- Lock an entry's ledger row for the tick transaction; returns its last tick. $1 entry name.
SELECT last_tick FROM {schema}.crons WHERE name = $1 FOR UPDATE

-- name: cron_ledger_advance
-- Advance an entry's ledger (inside the transaction that inserted the tick's jobs).
-- $1 entry name, $2 new last tick (timestamptz).
UPDATE {schema}.crons SET last_tick = $2, updated_at = now() WHERE name = $1
