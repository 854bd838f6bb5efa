-- The SQL API's registry (migration 002): the daemon's configuration, as the functions
-- run_trigger / run_triggers / run_schedule need it. Written by jobd.registry.sync_registry.

-- name: registry_resolve_table
-- The schema a table resolves to on this connection's search_path (NULL: no such table).
-- $1 the table as SQL text with quoted identifiers.
SELECT n.nspname::text
  FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.oid = pg_catalog.to_regclass($1::text)

-- name: registry_upsert_triggers
-- Insert or update every trigger of the configuration. Each $n is an array, one element
-- per trigger: $1 resource, $2 trigger, $3 state, $4 worker_name, $5 scheduler_name,
-- $6 queue, $7 scheduler_queue, $8 priority, $9 scheduler_priority, $10 max_attempts,
-- $11 max_scheduler_attempts, $12 uniq_hold (JSON text), $13 table_schema, $14 table_name,
-- $15 primary key (JSON text array or NULL), $16 tenant_mode, $17 tenant_attribute,
-- $18 actor store fields (JSON text array or NULL), $19 default_actor (JSON text or NULL),
-- $20 action_input (JSON text), $21 extra_args (JSON text).
INSERT INTO {schema}.trigger_registry AS r (
  resource, trigger, state, worker_name, scheduler_name, queue, scheduler_queue, priority,
  scheduler_priority, max_attempts, max_scheduler_attempts, uniq_hold, table_schema,
  table_name, primary_key, tenant_mode, tenant_attribute, actor_store, default_actor,
  action_input, extra_args, updated_at)
SELECT i.resource, i.trigger, i.state, i.worker_name, i.scheduler_name, i.queue,
       i.scheduler_queue, i.priority, i.scheduler_priority, i.max_attempts,
       i.max_scheduler_attempts, i.uniq_hold::jsonb, i.table_schema, i.table_name,
       CASE WHEN i.pk IS NOT NULL THEN ARRAY(SELECT jsonb_array_elements_text(i.pk::jsonb)) END, i.tenant_mode,
       i.tenant_attribute,
       CASE WHEN i.store IS NOT NULL THEN ARRAY(SELECT jsonb_array_elements_text(i.store::jsonb)) END,
       i.default_actor::jsonb, i.action_input::jsonb, i.extra_args::jsonb, now()
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::text[], $8::int[], $9::int[], $10::int[], $11::int[], $12::text[],
              $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
              $19::text[], $20::text[], $21::text[])
    AS i(resource, trigger, state, worker_name, scheduler_name, queue, scheduler_queue,
         priority, scheduler_priority, max_attempts, max_scheduler_attempts, uniq_hold,
         table_schema, table_name, pk, tenant_mode, tenant_attribute, store, default_actor,
         action_input, extra_args)
ON CONFLICT (resource, trigger) DO UPDATE SET
  state = excluded.state, worker_name = excluded.worker_name,
  scheduler_name = excluded.scheduler_name, queue = excluded.queue,
  scheduler_queue = excluded.scheduler_queue, priority = excluded.priority,
  scheduler_priority = excluded.scheduler_priority, max_attempts = excluded.max_attempts,
  max_scheduler_attempts = excluded.max_scheduler_attempts, uniq_hold = excluded.uniq_hold,
  table_schema = excluded.table_schema, table_name = excluded.table_name,
  primary_key = excluded.primary_key, tenant_mode = excluded.tenant_mode,
  tenant_attribute = excluded.tenant_attribute, actor_store = excluded.actor_store,
  default_actor = excluded.default_actor, action_input = excluded.action_input,
  extra_args = excluded.extra_args, updated_at = excluded.updated_at

-- name: registry_upsert_schedules
-- Insert or update every scheduled action. Arrays, one element per schedule: $1 resource,
-- $2 name, $3 state, $4 worker_name, $5 queue, $6 priority, $7 max_attempts,
-- $8 multitenant, $9 actor store fields (JSON text array or NULL), $10 default_actor
-- (JSON text or NULL), $11 action_input (JSON text).
INSERT INTO {schema}.schedule_registry AS r (
  resource, name, state, worker_name, queue, priority, max_attempts, multitenant,
  actor_store, default_actor, action_input, updated_at)
SELECT i.resource, i.name, i.state, i.worker_name, i.queue, i.priority, i.max_attempts,
       i.multitenant,
       CASE WHEN i.store IS NOT NULL THEN ARRAY(SELECT jsonb_array_elements_text(i.store::jsonb)) END,
       i.default_actor::jsonb, i.action_input::jsonb, now()
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
              $7::int[], $8::bool[], $9::text[], $10::text[], $11::text[])
    AS i(resource, name, state, worker_name, queue, priority, max_attempts, multitenant,
         store, default_actor, action_input)
ON CONFLICT (resource, name) DO UPDATE SET
  state = excluded.state, worker_name = excluded.worker_name, queue = excluded.queue,
  priority = excluded.priority, max_attempts = excluded.max_attempts,
  multitenant = excluded.multitenant, actor_store = excluded.actor_store,
  default_actor = excluded.default_actor, action_input = excluded.action_input,
  updated_at = excluded.updated_at

-- name: registry_prune_triggers
-- Delete the triggers no longer in the configuration. $1 "resource/trigger" pairs (text[]).
DELETE FROM {schema}.trigger_registry AS r WHERE NOT (r.resource || '/' || r.trigger = ANY ($1::text[]))

-- name: registry_prune_schedules
-- Delete the schedules no longer in the configuration. $1 "resource/name" pairs (text[]).
DELETE FROM {schema}.schedule_registry AS r WHERE NOT (r.resource || '/' || r.name = ANY ($1::text[]))

-- name: client_run_trigger
-- jobd.Client.run_trigger / schedule_trigger. JSON travels as text (no codec needed on
-- the caller's connection). $1 resource, $2 trigger, $3 primary key (JSON text, NULL: run
-- the scheduler), $4 actor (JSON text or NULL), $5 tenant.
SELECT {schema}.run_trigger($1::text, $2::text, $3::text::jsonb, $4::text::jsonb, $5::text)

-- name: client_run_triggers
-- jobd.Client.run_triggers. $1 resource, $2 trigger, $3 primary keys (JSON text array),
-- $4 actor (JSON text or NULL), $5 tenant. Returns bigint[].
SELECT {schema}.run_triggers($1::text, $2::text, $3::text::jsonb, $4::text::jsonb, $5::text)

-- name: client_run_schedule
-- jobd.Client.schedule. $1 resource, $2 schedule name, $3 input (JSON text or NULL),
-- $4 actor (JSON text or NULL), $5 tenant.
SELECT {schema}.run_schedule($1::text, $2::text, $3::text::jsonb, $4::text::jsonb, $5::text)
