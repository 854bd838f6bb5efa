-- Statement templates of the actions (jobd/actions/). Besides `{schema}`, these hold
-- placeholders that the action fills at build time with quoted identifiers and compiled,
-- checked `{sql: ...}` expressions only (never values): `{table}`, `{assignments}`, `{key}`.

-- name: action_update
-- The `update` action: one UPDATE of the job's row, by primary key.
-- {table}: the quoted, tenant-resolved table, e.g. "public"."orders"; also the row type
--   that jsonb_populate_record converts the JSON values into (so every value takes the
--   column's own type through the column type's input function: booleans, numbers,
--   timestamps, enums, jsonb, arrays).
-- {assignments}: `"col" = jobd_set."col"` for bound values, `"col" = <expression>` for
--   `{sql: ...}` values, whose columns are qualified with jobd_row.
-- {key}: `jobd_row."pk1" = jobd_key."pk1" AND ...`.
-- $1: text, a JSON object: column -> value, for every value that is not `{sql: ...}`.
-- $2: text, a JSON object: primary-key column -> value.
UPDATE {table} AS jobd_row
   SET {assignments}
  FROM jsonb_populate_record(NULL::{table}, $1::text::jsonb) AS jobd_set,
       jsonb_populate_record(NULL::{table}, $2::text::jsonb) AS jobd_key
 WHERE {key}

-- name: action_update_many
-- The `update` action for many rows at once (a trigger batch's on_success): the same
-- UPDATE as action_update, its values and keys one JSON array of `[values, key]` pairs.
-- {table}, {assignments}, {key}: as action_update.
-- $1: text, a JSON array: one `[values object, primary-key object]` per row.
-- Returns the (1-based) positions of the pairs whose row was updated.
UPDATE {table} AS jobd_row
   SET {assignments}
  FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS jobd_item(pair, n)
 CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, jobd_item.pair -> 0) AS jobd_set
 CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, jobd_item.pair -> 1) AS jobd_key
 WHERE {key}
RETURNING jobd_item.n
