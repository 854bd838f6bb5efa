-- Queries of jobd.testing (the users' test helpers). Read only.

-- name: testing_ran_since
-- The jobs that had an attempt since $1 (timestamptz: the database clock when a drain
-- began), oldest first.
SELECT id, worker, queue, state::text AS state, attempt, args, errors
  FROM {schema}.jobs
 WHERE attempted_at >= $1::timestamptz
 ORDER BY id

-- name: testing_row_jobs
-- The jobs of worker $1 for the row whose primary key is $2 (jsonb, as the job's args
-- store it) and tenant $3 (text; NULL: any), oldest first; with $4 (boolean) only those
-- that hold the row's unique key (waiting, running, or ended and still held).
SELECT id, worker, queue, state::text AS state, attempt, args, errors
  FROM {schema}.jobs
 WHERE worker = $1::text AND args -> 'pk' = $2::jsonb
   AND ($3::text IS NULL OR args ->> 'tenant' = $3::text)
   AND (NOT $4::boolean OR uniq_key IS NOT NULL)
 ORDER BY id
