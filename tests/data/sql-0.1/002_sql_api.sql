-- SQL API (migration 002)
-- Registry tables the daemon keeps in sync with its configuration (jobd/registry.py), and
-- the functions an application calls to enqueue inside its own transaction:
-- {schema}.run_trigger, {schema}.run_triggers, {schema}.run_schedule. They build exactly
-- the jobs jobd.triggers.api builds (args, uniq_key, uniq_hold, queue, priority,
-- max_attempts); NOTIFY is transactional, so a rollback enqueues and wakes nothing.
-- Errors: 42704 (undefined_object) unknown or deleted resource/trigger/schedule, with a
-- HINT listing the known names; 22023 (invalid_parameter_value) bad primary key, actor or
-- tenant; P0002 (no_data_found) run_trigger's row does not exist.

-- One row per trigger of the configuration (deleted ones too: calls name them clearly).
CREATE TABLE {schema}.trigger_registry (
  resource                text NOT NULL,
  trigger                 text NOT NULL,
  state                   text NOT NULL CHECK (state IN ('active', 'paused', 'deleted')),
  worker_name             text NOT NULL,
  scheduler_name          text NOT NULL,
  queue                   text NOT NULL,
  scheduler_queue         text NOT NULL,
  priority                integer NOT NULL,
  scheduler_priority      integer NOT NULL,
  max_attempts            integer NOT NULL,
  max_scheduler_attempts  integer NOT NULL,
  uniq_hold               jsonb NOT NULL,
  -- The table as the daemon resolved it (NULL schema: the tenant's, strategy schema).
  table_schema            text,
  table_name              text NOT NULL,
  primary_key             text[],  -- NULL: read from the catalog at call time
  tenant_mode             text NOT NULL CHECK (tenant_mode IN ('none', 'attribute', 'schema', 'record')),
  tenant_attribute        text,
  actor_store             text[],  -- the persister's `store` fields; NULL: the whole actor
  default_actor           jsonb,
  action_input            jsonb NOT NULL DEFAULT '{}',
  extra_args              jsonb NOT NULL DEFAULT '{}',
  updated_at              timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (resource, trigger)
);

-- One row per scheduled action of the configuration.
CREATE TABLE {schema}.schedule_registry (
  resource       text NOT NULL,
  name           text NOT NULL,
  state          text NOT NULL CHECK (state IN ('active', 'paused', 'deleted')),
  worker_name    text NOT NULL,
  queue          text NOT NULL,
  priority       integer NOT NULL,
  max_attempts   integer NOT NULL,
  multitenant    boolean NOT NULL,
  actor_store    text[],
  default_actor  jsonb,
  action_input   jsonb NOT NULL DEFAULT '{}',
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (resource, name)
);

-- What a job keeps of `actor` (jobd.actors.store_actor for field persisters).
CREATE FUNCTION {schema}._store_actor(actor jsonb, store text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
  SELECT CASE
    WHEN actor IS NULL OR store IS NULL THEN actor
    ELSE coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(actor) AS e
                    WHERE e.key = ANY (store)), '{}'::jsonb)
  END
$$;

-- The insert notification channel of this install (jobd.engine.insert.channel).
CREATE FUNCTION {schema}._insert_channel() RETURNS text
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
  SELECT CASE n.nspname WHEN 'jobd' THEN 'jobd_insert' ELSE n.nspname || '_jobd_insert' END
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
   WHERE c.oid = '{schema}.jobs'::regclass
$$;

-- The registry row of a trigger; 42704 with the known names when there is none.
CREATE FUNCTION {schema}._trigger(p_resource text, p_trigger text)
RETURNS {schema}.trigger_registry
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
  reg {schema}.trigger_registry;
  known text;
BEGIN
  SELECT * INTO reg FROM {schema}.trigger_registry AS r
   WHERE r.resource = p_resource AND r.trigger = p_trigger;
  IF reg.resource IS NOT NULL AND reg.state <> 'deleted' THEN
    RETURN reg;
  END IF;
  SELECT string_agg(r.trigger, ', ' ORDER BY r.trigger) INTO known
    FROM {schema}.trigger_registry AS r WHERE r.resource = p_resource AND r.state <> 'deleted';
  IF known IS NULL THEN
    SELECT string_agg(DISTINCT r.resource, ', ') INTO known FROM {schema}.trigger_registry AS r;
    RAISE EXCEPTION 'jobd: unknown resource % (or it has no triggers)', quote_literal(p_resource)
      USING ERRCODE = 'undefined_object',
            HINT = 'resources with triggers: ' || coalesce(known, '(none: is the daemon running this configuration?)');
  END IF;
  RAISE EXCEPTION 'jobd: resource % has no trigger %', quote_literal(p_resource),
      quote_literal(p_trigger) || CASE WHEN reg.state = 'deleted' THEN ' (it is deleted)' ELSE '' END
    USING ERRCODE = 'undefined_object', HINT = 'triggers of ' || p_resource || ': ' || known;
END
$$;

-- Enqueue the trigger's worker for each primary key whose row exists, in one statement,
-- as jobd.triggers.api._enqueue does (query trigger_enqueue_keys). Returns the number of
-- rows found and the ids inserted (rows with a job already get none).
CREATE FUNCTION {schema}._enqueue_trigger(
  reg {schema}.trigger_registry, primary_keys jsonb, actor jsonb, tenant text,
  OUT found_rows bigint, OUT ids bigint[])
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
  rel regclass;
  pk text[];
  cols text := '';
  obj text := '';
  keyvals text := '';
  joins text := '';
  job_tenant text := '$5::text';
  filter text := 'true';
  attr_type text;
  stored jsonb;
  i int;
BEGIN
  IF reg.tenant_mode = 'schema' AND (tenant IS NULL OR tenant !~ '^[A-Za-z_][A-Za-z0-9_$]*$'
                                     OR octet_length(tenant) > 63) THEN
    RAISE EXCEPTION 'jobd: resource % (schema tenancy) needs a valid tenant', quote_literal(reg.resource)
      USING ERRCODE = 'invalid_parameter_value';
  ELSIF reg.tenant_mode = 'none' AND tenant IS NOT NULL THEN
    RAISE EXCEPTION 'jobd: resource % is not multitenant: no tenant expected', quote_literal(reg.resource)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF actor IS NOT NULL AND jsonb_typeof(actor) <> 'object' THEN
    RAISE EXCEPTION 'jobd: actor must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF primary_keys IS NULL OR jsonb_typeof(primary_keys) <> 'array' THEN
    RAISE EXCEPTION 'jobd: primary keys must be a JSON array of objects'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  found_rows := 0;
  ids := '{}';
  IF jsonb_array_length(primary_keys) = 0 THEN
    RETURN;
  END IF;
  rel := to_regclass(CASE WHEN coalesce(reg.table_schema, tenant) IS NULL
                          THEN format('%I', reg.table_name)
                          ELSE format('%I.%I', coalesce(reg.table_schema, tenant), reg.table_name) END);
  IF rel IS NULL THEN
    RAISE EXCEPTION 'jobd: table %.% of resource % does not exist',
      coalesce(reg.table_schema, tenant, '?'), reg.table_name, quote_literal(reg.resource)
      USING ERRCODE = 'undefined_table', HINT = 'is the daemon running this configuration?';
  END IF;
  pk := coalesce(reg.primary_key, ARRAY(
    SELECT a.attname::text FROM pg_index AS x
     CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
     WHERE x.indrelid = rel AND x.indisprimary ORDER BY k.ord));
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(primary_keys) AS e(v)
              WHERE jsonb_typeof(e.v) <> 'object'
                 OR ARRAY(SELECT k FROM jsonb_object_keys(e.v) AS k ORDER BY k)
                    <> ARRAY(SELECT k FROM unnest(pk) AS k ORDER BY k)) THEN
    RAISE EXCEPTION 'jobd: primary key must name exactly %', array_to_string(pk, ', ')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR i IN 1 .. array_length(pk, 1) LOOP
    cols := cols || format('%st.%I AS k%s', CASE WHEN i > 1 THEN ', ' END, pk[i], i - 1);
    obj := obj || format('%s%L::text, p.k%s', CASE WHEN i > 1 THEN ', ' END, pk[i], i - 1);
    keyvals := keyvals || format('%sp.k%s', CASE WHEN i > 1 THEN ', ' END, i - 1);
    joins := joins || format('%st.%I = w.%I', CASE WHEN i > 1 THEN ' AND ' END, pk[i], pk[i]);
  END LOOP;
  IF reg.tenant_attribute IS NOT NULL AND reg.tenant_mode IN ('attribute', 'record') THEN
    cols := cols || format(', t.%I::text AS tn', reg.tenant_attribute);
    job_tenant := 'coalesce($5::text, p.tn)';
    IF tenant IS NOT NULL THEN
      SELECT format_type(a.atttypid, a.atttypmod) INTO attr_type FROM pg_attribute AS a
       WHERE a.attrelid = rel AND a.attname = reg.tenant_attribute AND NOT a.attisdropped;
      filter := format('t.%I = $5::text::%s', reg.tenant_attribute, attr_type);
    END IF;
  END IF;
  stored := {schema}._store_actor(actor, reg.actor_store);
  EXECUTE format($q$
    WITH found AS (
      SELECT %1$s FROM jsonb_populate_recordset(NULL::%2$s, $1) AS w
        JOIN %2$s AS t ON %3$s
       WHERE %4$s
    ), ins AS (
      INSERT INTO {schema}.jobs (queue, worker, args, priority, max_attempts, uniq_key, uniq_hold)
      SELECT ($2).queue, ($2).worker_name,
             $3 || jsonb_build_object('pk', jsonb_build_object(%5$s), 'tenant', %6$s),
             ($2).priority, ($2).max_attempts, $4 || jsonb_build_array(%7$s)::text, ($2).uniq_hold
        FROM found AS p
      ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
      RETURNING id
    )
    SELECT (SELECT count(*) FROM found), ARRAY(SELECT id FROM ins ORDER BY id)
  $q$, cols, rel, joins, filter, obj, job_tenant, keyvals)
  INTO found_rows, ids
  USING primary_keys, reg,
        jsonb_build_object('actor', stored, 'input', reg.action_input, 'extra', reg.extra_args),
        reg.worker_name || ':' || CASE WHEN reg.tenant_mode = 'schema' THEN tenant ELSE '' END || ':',
        tenant;
  IF cardinality(ids) > 0 THEN
    PERFORM pg_notify({schema}._insert_channel(), reg.queue);
  END IF;
END
$$;

-- Enqueue the trigger's scheduler now (AshOban `schedule`); its unique key is the cron
-- entry's, so never two pending. NULL when one is already waiting.
CREATE FUNCTION {schema}._schedule_trigger(reg {schema}.trigger_registry, actor jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
  stored jsonb := {schema}._store_actor(actor, reg.actor_store);
  new_id bigint;
BEGIN
  IF actor IS NOT NULL AND jsonb_typeof(actor) <> 'object' THEN
    RAISE EXCEPTION 'jobd: actor must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO {schema}.jobs (queue, worker, args, priority, max_attempts, uniq_key, uniq_hold)
  VALUES (reg.scheduler_queue, reg.scheduler_name,
          CASE WHEN stored IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('actor', stored) END,
          reg.scheduler_priority, reg.max_scheduler_attempts, 'cron:' || reg.scheduler_name, '{}')
  ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
  RETURNING id INTO new_id;
  IF new_id IS NOT NULL THEN
    PERFORM pg_notify({schema}._insert_channel(), reg.scheduler_queue);
  END IF;
  RETURN new_id;
END
$$;

-- Enqueue one row's trigger job: its id, NULL when the row already has a waiting job.
-- primary_key NULL: enqueue the trigger's scheduler now instead.
CREATE FUNCTION {schema}.run_trigger(
  resource text, trigger text, primary_key jsonb DEFAULT NULL, actor jsonb DEFAULT NULL,
  tenant text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
  reg {schema}.trigger_registry := {schema}._trigger(resource, trigger);
  result record;
BEGIN
  IF primary_key IS NULL THEN
    RETURN {schema}._schedule_trigger(reg, actor);
  END IF;
  result := {schema}._enqueue_trigger(reg, jsonb_build_array(primary_key), actor, tenant);
  IF result.found_rows = 0 THEN
    RAISE EXCEPTION 'jobd: no row of resource % with primary key % (tenant %)',
      quote_literal(resource), primary_key::text, coalesce(quote_literal(tenant), 'none')
      USING ERRCODE = 'no_data_found';
  END IF;
  RETURN result.ids[1];
END
$$;

-- Enqueue many rows' trigger jobs in one statement; the ids inserted (rows that already
-- have a job, or do not exist, get none).
CREATE FUNCTION {schema}.run_triggers(
  resource text, trigger text, primary_keys jsonb, actor jsonb DEFAULT NULL,
  tenant text DEFAULT NULL) RETURNS bigint[]
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
BEGIN
  RETURN ({schema}._enqueue_trigger({schema}._trigger(resource, trigger), primary_keys, actor,
                                    tenant)).ids;
END
$$;

-- Run a scheduled action now (jobd.triggers.api.run_schedule): `input` merged over its
-- action_input; on a multitenant resource a fan-out job unless `tenant` is given.
CREATE FUNCTION {schema}.run_schedule(
  resource text, name text, input jsonb DEFAULT NULL, actor jsonb DEFAULT NULL,
  tenant text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
  reg {schema}.schedule_registry;
  known text;
  args jsonb;
  new_id bigint;
BEGIN
  SELECT * INTO reg FROM {schema}.schedule_registry AS s
   WHERE s.resource = run_schedule.resource AND s.name = run_schedule.name AND s.state <> 'deleted';
  IF reg.resource IS NULL THEN
    SELECT string_agg(s.name, ', ' ORDER BY s.name) INTO known FROM {schema}.schedule_registry AS s
     WHERE s.resource = run_schedule.resource AND s.state <> 'deleted';
    RAISE EXCEPTION 'jobd: resource % has no scheduled action %', quote_literal(resource),
      quote_literal(name)
      USING ERRCODE = 'undefined_object',
            HINT = 'scheduled actions of ' || resource || ': ' || coalesce(known, '(none)');
  END IF;
  IF tenant IS NOT NULL AND NOT reg.multitenant THEN
    RAISE EXCEPTION 'jobd: resource % is not multitenant: no tenant expected', quote_literal(resource)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF (input IS NOT NULL AND jsonb_typeof(input) <> 'object')
     OR (actor IS NOT NULL AND jsonb_typeof(actor) <> 'object') THEN
    RAISE EXCEPTION 'jobd: input and actor must be JSON objects'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  args := jsonb_build_object('input', reg.action_input || coalesce(input, '{}'),
                             'actor', {schema}._store_actor(actor, reg.actor_store),
                             'tenant', tenant);
  IF reg.multitenant AND tenant IS NULL THEN
    args := args || '{"fanout": true}';
  END IF;
  INSERT INTO {schema}.jobs (queue, worker, args, priority, max_attempts)
  VALUES (reg.queue, reg.worker_name, args, reg.priority, reg.max_attempts)
  RETURNING id INTO new_id;
  PERFORM pg_notify({schema}._insert_channel(), reg.queue);
  RETURN new_id;
END
$$;
