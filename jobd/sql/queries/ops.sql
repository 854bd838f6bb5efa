-- Operator reads and writes (CLI `jobs`/`queues`/`status`, admin JSON API): jobd/ops.py.

-- name: ops_list_jobs
-- Jobs, newest first, filtered. $1 state text (NULL = any), $2 queue (NULL = any),
-- $3 worker (NULL = any), $4 limit. `outcome` tells an ended job's story: succeeded,
-- handled (completed because on_error handled its failure: not a success), failed
-- (discarded), cancelled; NULL while it has not ended.
SELECT id, state::text AS state,
       CASE state WHEN 'completed' THEN CASE WHEN meta ? 'handled' THEN 'handled'
                                             ELSE 'succeeded' END
                  WHEN 'discarded' THEN 'failed' WHEN 'cancelled' THEN 'cancelled' END
         AS outcome,
       queue, worker, attempt, max_attempts, priority, tags,
       inserted_at, scheduled_at, attempted_at, attempted_by, completed_at, discarded_at,
       cancelled_at
FROM {schema}.jobs
WHERE ($1::text IS NULL OR state::text = $1)
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR worker = $3)
ORDER BY id DESC
LIMIT $4

-- name: ops_get_job
-- One job with everything (args, meta, errors), `outcome` as in ops_list_jobs. $1 id.
SELECT id, state::text AS state,
       CASE state WHEN 'completed' THEN CASE WHEN meta ? 'handled' THEN 'handled'
                                             ELSE 'succeeded' END
                  WHEN 'discarded' THEN 'failed' WHEN 'cancelled' THEN 'cancelled' END
         AS outcome,
       queue, worker, args, meta, tags, errors, attempt,
       max_attempts, priority, inserted_at, scheduled_at, attempted_at, attempted_by,
       completed_at, discarded_at, cancelled_at, uniq_key, uniq_hold
FROM {schema}.jobs WHERE id = $1

-- name: ops_retry_job
-- Run job $1 again now (as Oban's retry_job): any state but available and executing goes
-- to available; the attempt count is kept and max_attempts raised when exhausted. Its
-- unique key comes back (from meta.uniq_key when it was released): a unique violation
-- (23505) means another job holds the key now, and nothing changes.
UPDATE {schema}.jobs
SET state = 'available', scheduled_at = now(), completed_at = NULL, discarded_at = NULL,
    cancelled_at = NULL, max_attempts = greatest(max_attempts, attempt + 1),
    uniq_key = coalesce(uniq_key, meta ->> 'uniq_key')
WHERE id = $1 AND state NOT IN ('available', 'executing')
RETURNING id, queue, state::text AS state

-- name: ops_key_holder
-- The job that holds job $1's unique key (its own or the one it released), if another.
SELECT h.id, h.state::text AS state
  FROM {schema}.jobs AS j
  JOIN {schema}.jobs AS h ON h.uniq_key = coalesce(j.uniq_key, j.meta ->> 'uniq_key')
 WHERE j.id = $1 AND h.id <> j.id

-- name: ops_cancel_job
-- Cancel job $1 if it is incomplete (available, scheduled, retryable, executing). An
-- executing attempt is not interrupted, but its fenced ack then matches nothing, so its
-- own transactional work rolls back. $2 error entry (jsonb). The unique key is released
-- unless the job's uniq_hold keeps it for cancelled jobs.
UPDATE {schema}.jobs AS j
SET state = 'cancelled', cancelled_at = clock_timestamp(),
    errors = array_append(j.errors, $2::jsonb),
    meta = CASE WHEN j.state = 'executing'
                THEN j.meta || '{"cancel_requested": true}'::jsonb ELSE j.meta END,
    uniq_key = CASE WHEN j.uniq_hold ? 'cancelled' THEN j.uniq_key END
WHERE j.id = $1 AND j.state IN ('available', 'scheduled', 'retryable', 'executing')
RETURNING j.id

-- name: ops_nodes
-- Live node rows with heartbeat age in seconds and whether the node holds the lease
-- (no parameters).
SELECT n.id, n.name, n.started_at, n.heartbeat_at,
       extract(epoch FROM now() - n.heartbeat_at)::float8 AS heartbeat_age_s,
       (l.node_id IS NOT NULL) AS leader
FROM {schema}.nodes AS n
LEFT JOIN {schema}.leader AS l ON l.node_id = n.id AND l.expires_at > now()
ORDER BY n.started_at, n.id

-- name: ops_waiting_for_worker
-- Jobs that wait for a node: by queue and worker, the jobs no live node can claim because
-- none both serves the queue and knows the worker (a rolling deploy's new trigger, a
-- removed one; with no daemon running, every waiting job). Counted per (queue, worker)
-- first, so the node check runs once per pair, not per job. No parameters.
SELECT w.queue, w.worker, w.n AS jobs
FROM (SELECT queue, worker, count(*)::bigint AS n
        FROM {schema}.jobs
       WHERE state IN ('available', 'scheduled', 'retryable')
       GROUP BY queue, worker) AS w
WHERE NOT EXISTS (SELECT 1 FROM {schema}.nodes AS n
                   WHERE n.meta -> 'workers' ? w.worker AND n.meta -> 'queues' ? w.queue)
ORDER BY w.queue, w.worker

-- name: ops_leader
-- The current lease holder, if the lease has not expired (no parameters).
SELECT node_id, elected_at, expires_at FROM {schema}.leader WHERE expires_at > now()
