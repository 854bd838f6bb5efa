-- What `jobd check --db` runs to see whether the configuration fits the database
-- (jobd/triggers/check.py). Nothing here writes: the check only prepares the statements
-- the triggers will run, and converts values, inside a READ ONLY transaction.

-- name: set_read_only
-- Make the current transaction (or savepoint) read only (no parameters): a statement that
-- writes then fails instead of writing. Runs before user-written SQL that must only read
-- (list_tenants.sql at start and check, actor lookup.sql at check).
SET TRANSACTION READ ONLY

-- name: check_where
-- A probe that prepares (never runs) one configured expression {filter} over {table} as
-- the trigger's statements alias it (t), so a finding belongs to that key. No parameters.
SELECT 1 FROM {table} AS t WHERE {filter}

-- name: check_set_value
-- Converts $1 (JSON text of an object of one column and a value, as the update action
-- binds it) into a row of {table} the way the update does (jsonb_populate_record): a
-- value of the wrong type fails here, with the column's type named.
SELECT 1 FROM jsonb_populate_record(NULL::{table}, $1::text::jsonb)

-- name: check_expression
-- A probe that prepares (never runs) an update action's {sql: ...} value, {expression},
-- over {table} (aliased t), so a finding belongs to that value. No parameters.
SELECT {expression} FROM {table} AS t
