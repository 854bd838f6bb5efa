-- Queue control: runtime settings every node reads (pause, resume, scale).

-- name: queue_settings
-- All rows of the queues table (no parameters).
SELECT name, paused, local_limit, global_limit FROM {schema}.queues

-- name: queue_pause
-- Pause ($2 = true) or resume ($2 = false) queue $1, creating its row if needed.
INSERT INTO {schema}.queues (name, paused) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now()

-- name: queue_scale
-- Set queue $1's per-node limit to $2 (NULL = back to the configured limit) and, when $4 is
-- true, its global limit to $3 (NULL = none); creates the row if needed.
INSERT INTO {schema}.queues (name, local_limit, global_limit)
VALUES ($1, $2, CASE WHEN $4::bool THEN $3::int END)
ON CONFLICT (name) DO UPDATE SET
  local_limit = excluded.local_limit,
  global_limit = CASE WHEN $4::bool THEN excluded.global_limit
                      ELSE {schema}.queues.global_limit END,
  updated_at = now()

-- name: queue_signal
-- Tell every node to re-read the queue settings. $1 channel, $2 JSON payload (text).
SELECT pg_notify($1, $2)

-- name: queue_counts
-- Jobs per queue and state, for status displays (no parameters).
SELECT queue, state::text AS state, count(*) AS n FROM {schema}.jobs GROUP BY queue, state
