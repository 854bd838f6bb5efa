-- A trigger's batch of jobs (jobd/triggers/worker.py, filled by jobd/triggers/batchsql.py):
-- the statements that stand for many rows at once.

-- name: batch_read
-- Fence a batch's jobs and re-read their rows, in one statement.
-- `fenced`: the jobs still executing this attempt on this node, locked ({job_lock}: FOR
-- UPDATE OF j in a batch's transaction, so no rescue or cancel can end them before it
-- commits; empty for the look before an action run outside a transaction). A job
-- missing here lost its claim. `matched`: their rows by primary key (the job's args.pk, converted to the key
-- columns' types by jsonb_populate_record), with the trigger's and the read's filters
-- ({filter}), under {row_lock} (FOR UPDATE OF t with lock_for_update); a fenced job with
-- no matched row no longer applies.
-- {table}: the quoted, tenant-resolved table; {columns}: `t.*` or the read's columns;
-- {pk_join}: `t."k" = w."k" AND ...`.
-- $1 job ids (bigint[]), $2 their attempts (int[]), $3 node id.
-- The id list is MATERIALIZED first: its size is known there, each job is one probe of
-- the jobs primary key and each row one probe of the table's, whatever the statistics.
WITH wanted AS MATERIALIZED (
  SELECT u.id, u.attempt FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt)
), fenced AS MATERIALIZED (
  SELECT j.id, j.args -> 'pk' AS pk
    FROM wanted AS u
    JOIN {schema}.jobs AS j ON j.id = u.id
   WHERE j.attempt = u.attempt AND j.state = 'executing' AND j.attempted_by = $3::text
  {job_lock}
), matched AS MATERIALIZED (
  SELECT f.id AS jobd_job_id, {columns}
    FROM fenced AS f
   CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, f.pk) AS w
    JOIN {table} AS t ON {pk_join}
   WHERE {filter}
  {row_lock}
)
SELECT f.id AS jobd_fenced, m.*
  FROM fenced AS f
  LEFT JOIN matched AS m ON m.jobd_job_id = f.id
