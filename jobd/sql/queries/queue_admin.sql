-- What an operator asks of queues that no node does itself (jobd/engine/ops.py): whether a
-- queue name is known, which names are, and the removal of a queue no configuration names.

-- name: queue_known
-- Whether queue $1 has a job (in any state) or a row in the settings table.
SELECT EXISTS (SELECT 1 FROM {schema}.jobs WHERE queue = $1)
    OR EXISTS (SELECT 1 FROM {schema}.queues WHERE name = $1)

-- name: queue_names
-- Every queue name that has a job or a settings row (no parameters). The jobs' names are
-- read with a skip scan of the fetch index (one probe per name), not a scan of all jobs.
WITH RECURSIVE q AS (
  (SELECT queue FROM {schema}.jobs ORDER BY queue LIMIT 1)
  UNION ALL
  SELECT (SELECT j.queue FROM {schema}.jobs AS j WHERE j.queue > q.queue
          ORDER BY j.queue LIMIT 1)
  FROM q WHERE q.queue IS NOT NULL
)
SELECT queue AS name FROM q WHERE queue IS NOT NULL
UNION
SELECT name FROM {schema}.queues

-- name: queue_incomplete
-- How many jobs of queue $1 have not ended (available, scheduled, retryable, executing).
SELECT count(*) FROM {schema}.jobs
WHERE queue = $1 AND state IN ('available', 'scheduled', 'retryable', 'executing')

-- name: queue_remove
-- Delete queue $1's row of runtime settings; returns its name when there was one.
DELETE FROM {schema}.queues WHERE name = $1 RETURNING name
