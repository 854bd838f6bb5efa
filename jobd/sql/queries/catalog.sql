-- Catalog look-ups about the user's tables (not jobd's own): used by `jobd check --db`
-- and at start to verify the `where` expressions against real columns.

-- name: table_columns
-- The columns of one table, view or other relation, in their order.
-- $1: the relation's name as SQL text with quoted identifiers ('"public"."orders"' or
--     '"orders"', which is resolved via the search_path).
-- One row always: relid NULL when no such relation exists.
SELECT rel.relid,
       ARRAY(
         SELECT a.attname::text
           FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = rel.relid AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum
       ) AS columns
  FROM (SELECT pg_catalog.to_regclass($1::text) AS relid) AS rel
