-- jobd's functions, (re)created by every `jobd migrate` and `jobd run` after the tables
-- are current: functions are code, not data, so they are replaced whole rather than
-- migrated (a changed parameter list is dropped by a migration first, as
-- migrations/004_enqueue_options.sql does). `{schema}` as in schema.sql.
--
-- The SQL API: what an application calls to enqueue inside its own transaction:
-- {schema}.run_trigger, {schema}.run_triggers, {schema}.run_schedule. They read the
-- registry tables (schema.sql) and are the one implementation of programmatic enqueue:
-- jobd.Client, the CLI and the admin API call them too. The job they build has the shape
-- jobd.triggers.jobs describes (args, uniq_key, uniq_hold, queue, priority, max_attempts),
-- the same as the scheduler's scan builds; tests/integration/test_sql_api.py compares
-- them. NOTIFY is transactional, so a rollback enqueues and wakes nothing.
-- Errors: 42704 (undefined_object) unknown or deleted resource/trigger/schedule, with a
-- HINT listing the known names; 22023 (invalid_parameter_value) bad primary key, actor,
-- tenant, input, priority or time; P0002 (no_data_found) run_trigger's row does not exist.
--
-- Options of a programmatic enqueue (issue 15): `input` (merged over the configured
-- action_input), `priority` (0-9, instead of the configured one) and a time, `schedule_in`
-- (an interval: '10m', '2 hours') or `scheduled_at` (a timestamptz): until then the job is
-- `scheduled`, and it holds its row's unique key from its insert on. `_with_options`
-- writes them into the registry row's job template (args.input, priority, scheduled_at),
-- which `_insert_job` and `_enqueue_trigger` insert as they are.

-- What a job keeps of `actor` (jobd.triggers.actors.store_actor for field persisters).
CREATE OR REPLACE FUNCTION {schema}._store_actor(actor jsonb, store text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
  SELECT CASE
    WHEN actor IS NULL OR store IS NULL THEN actor
    ELSE coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(actor) AS e
                    WHERE e.key = ANY (store)), '{}'::jsonb)
  END
$$;

-- The insert notification channel of this install (jobd.engine.insert.channel).
CREATE OR REPLACE FUNCTION {schema}._insert_channel() RETURNS text
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
  SELECT CASE n.nspname WHEN 'jobd' THEN 'jobd_insert' ELSE n.nspname || '_jobd_insert' END
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
   WHERE c.oid = '{schema}.jobs'::regclass
$$;

-- The registry row of a trigger or a scheduled action (p_kind); 42704 with the known
-- names as hint when there is none, or it is deleted.
CREATE OR REPLACE FUNCTION {schema}._registered(p_resource text, p_kind text, p_name text)
RETURNS {schema}.registry
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
  reg {schema}.registry;
  known text;
  what text := CASE p_kind WHEN 'trigger' THEN 'trigger' ELSE 'scheduled action' END;
BEGIN
  SELECT * INTO reg FROM {schema}.registry AS r
   WHERE r.resource = p_resource AND r.kind = p_kind AND r.name = p_name;
  IF reg.resource IS NOT NULL AND reg.state <> 'deleted' THEN
    RETURN reg;
  END IF;
  SELECT string_agg(r.name, ', ' ORDER BY r.name) INTO known FROM {schema}.registry AS r
   WHERE r.resource = p_resource AND r.kind = p_kind AND r.state <> 'deleted';
  IF known IS NULL AND p_kind = 'trigger' THEN
    SELECT string_agg(DISTINCT r.resource, ', ' ORDER BY r.resource) INTO known
      FROM {schema}.registry AS r WHERE r.kind = 'trigger';
    RAISE EXCEPTION 'jobd: unknown resource % (or it has no triggers)', quote_literal(p_resource)
      USING ERRCODE = 'undefined_object',
            HINT = 'resources with triggers: ' || coalesce(known,
              '(none: run `jobd migrate -c CONFIG`, or start `jobd run`, with the configuration)');
  END IF;
  RAISE EXCEPTION 'jobd: resource % has no % %', quote_literal(p_resource), what,
      quote_literal(p_name) || CASE WHEN reg.state = 'deleted' THEN ' (it is deleted)' ELSE '' END
    USING ERRCODE = 'undefined_object',
          HINT = what || 's of ' || p_resource || ': ' || coalesce(known, '(none)');
END
$$;

-- A registry row with a programmatic enqueue's options written into its job template:
-- `input` merged over args.input, `priority`, and `scheduled_at` (now + schedule_in, or
-- scheduled_at; none: the job is available at once). 22023 for an input that is not an
-- object, a priority outside 0-9, both times, a negative schedule_in or a past scheduled_at
-- (by the database's clock, the transaction's start).
CREATE OR REPLACE FUNCTION {schema}._with_options(
  reg {schema}.registry, input jsonb, schedule_in interval, scheduled_at timestamptz,
  priority integer) RETURNS {schema}.registry
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
BEGIN
  IF input IS NOT NULL AND jsonb_typeof(input) <> 'object' THEN
    RAISE EXCEPTION 'jobd: input must be a JSON object, got %', jsonb_typeof(input)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'e.g. {"period": "week"}';
  END IF;
  IF priority IS NOT NULL AND (priority < 0 OR priority > 9) THEN
    RAISE EXCEPTION 'jobd: priority must be 0 (highest) to 9, got %', priority
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF schedule_in IS NOT NULL AND scheduled_at IS NOT NULL THEN
    RAISE EXCEPTION 'jobd: give schedule_in or scheduled_at, not both'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF schedule_in < interval '0' THEN
    RAISE EXCEPTION 'jobd: schedule_in must not be negative, got %', schedule_in
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF scheduled_at < now() THEN
    RAISE EXCEPTION 'jobd: scheduled_at % is in the past (the database''s time is %)',
      scheduled_at, now()
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'give a later time, or no time to run it as soon as possible';
  END IF;
  IF input IS NOT NULL THEN
    reg.job := reg.job || jsonb_build_object('args', coalesce(reg.job->'args', '{}')
      || jsonb_build_object('input', coalesce(reg.job->'args'->'input', '{}') || input));
  END IF;
  IF priority IS NOT NULL THEN
    reg.job := reg.job || jsonb_build_object('priority', priority);
  END IF;
  IF schedule_in IS NOT NULL OR scheduled_at IS NOT NULL THEN
    reg.job := reg.job || jsonb_build_object('scheduled_at', coalesce(scheduled_at, now() + schedule_in));
  END IF;
  RETURN reg;
END
$$;

-- Insert one job from a registry template (`tpl`: worker, queue, priority, max_attempts,
-- uniq_key, uniq_hold, args, tags, and scheduled_at when _with_options set one) with `args`
-- merged over the template's; notify its queue. NULL when its unique key is held by
-- another job.
CREATE OR REPLACE FUNCTION {schema}._insert_job(tpl jsonb, args jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
  new_id bigint;
BEGIN
  INSERT INTO {schema}.jobs (state, scheduled_at, queue, worker, args, priority, max_attempts,
                             uniq_key, uniq_hold, tags)
  VALUES (CASE WHEN (tpl->>'scheduled_at')::timestamptz > now() THEN 'scheduled'
               ELSE 'available' END::{schema}.job_state,
          coalesce((tpl->>'scheduled_at')::timestamptz, now()),
          tpl->>'queue', tpl->>'worker', coalesce(tpl->'args', '{}') || args,
          (tpl->>'priority')::int, (tpl->>'max_attempts')::int, tpl->>'uniq_key',
          coalesce(tpl->'uniq_hold', '{}'), ARRAY(SELECT jsonb_array_elements_text(tpl->'tags')))
  ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
  RETURNING id INTO new_id;
  IF new_id IS NOT NULL THEN
    PERFORM pg_notify({schema}._insert_channel(), tpl->>'queue');
  END IF;
  RETURN new_id;
END
$$;

-- 22023 unless `tenant` fits the resource's tenancy: none without multitenancy; with the
-- schema strategy a schema name (jobd.sql.ident.is_identifier), given when `required`.
CREATE OR REPLACE FUNCTION {schema}._check_tenant(reg {schema}.registry, tenant text,
                                                  required boolean) RETURNS void
LANGUAGE plpgsql IMMUTABLE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
BEGIN
  IF reg.tenant_mode = 'schema' AND ((tenant IS NULL AND required) OR (tenant IS NOT NULL AND
      (tenant !~ '^[A-Za-z_][A-Za-z0-9_$]*$' OR octet_length(tenant) > 63))) THEN
    RAISE EXCEPTION 'jobd: resource % (schema tenancy) needs a valid tenant', quote_literal(reg.resource)
      USING ERRCODE = 'invalid_parameter_value';
  ELSIF reg.tenant_mode = 'none' AND tenant IS NOT NULL THEN
    RAISE EXCEPTION 'jobd: resource % is not multitenant: no tenant expected', quote_literal(reg.resource)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- The actor a job keeps (NULL: none); 22023 unless it is a JSON object.
CREATE OR REPLACE FUNCTION {schema}._stored_actor(reg {schema}.registry, actor jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
BEGIN
  IF actor IS NOT NULL AND jsonb_typeof(actor) <> 'object' THEN
    RAISE EXCEPTION 'jobd: actor must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN {schema}._store_actor(actor, reg.actor_store);
END
$$;

-- Enqueue the trigger's worker for each primary key whose row exists, in one statement,
-- each job shaped as the scheduler's scan shapes it (query trigger_scan_enqueue). Returns
-- the number of rows found and the ids inserted (rows with a job already get none).
CREATE OR REPLACE FUNCTION {schema}._enqueue_trigger(
  reg {schema}.registry, primary_keys jsonb, actor jsonb, tenant text,
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
  PERFORM {schema}._check_tenant(reg, tenant, reg.tenant_mode = 'schema');
  stored := {schema}._stored_actor(reg, actor);
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
  EXECUTE format($q$
    WITH found AS (
      SELECT %1$s FROM jsonb_populate_recordset(NULL::%2$s, $1) AS w
        JOIN %2$s AS t ON %3$s
       WHERE %4$s
    ), ins AS (
      INSERT INTO {schema}.jobs (state, scheduled_at, queue, worker, args, priority,
                                 max_attempts, uniq_key, uniq_hold, tags)
      SELECT CASE WHEN ($2->>'scheduled_at')::timestamptz > now() THEN 'scheduled'
                  ELSE 'available' END::{schema}.job_state,
             coalesce(($2->>'scheduled_at')::timestamptz, now()),
             $2->>'queue', $2->>'worker',
             $3 || jsonb_build_object('pk', jsonb_build_object(%5$s), 'tenant', %6$s),
             ($2->>'priority')::int, ($2->>'max_attempts')::int,
             $4 || jsonb_build_array(%7$s)::text, coalesce($2->'uniq_hold', '{}'),
             ARRAY(SELECT jsonb_array_elements_text($2->'tags'))
        FROM found AS p
      ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING
      RETURNING id
    )
    SELECT (SELECT count(*) FROM found), ARRAY(SELECT id FROM ins ORDER BY id)
  $q$, cols, rel, joins, filter, obj, job_tenant, keyvals)
  INTO found_rows, ids
  USING primary_keys, reg.job,
        coalesce(reg.job->'args', '{}') || jsonb_build_object('actor', stored),
        (reg.job->>'worker') || ':' || CASE WHEN reg.tenant_mode = 'schema' THEN tenant ELSE '' END || ':',
        tenant;
  IF cardinality(ids) > 0 THEN
    PERFORM pg_notify({schema}._insert_channel(), reg.job->>'queue');
  END IF;
END
$$;

-- Enqueue one row's trigger job: its id, NULL when the row already has a job holding its
-- key (a scheduled one included). primary_key NULL: enqueue the trigger's scheduler now
-- instead (AshOban `schedule`); NULL when a scheduler run is already waiting. The options
-- (input, schedule_in, scheduled_at, priority) are the row's job's: a scheduler run takes
-- none (22023).
CREATE OR REPLACE FUNCTION {schema}.run_trigger(
  resource text, trigger text, primary_key jsonb DEFAULT NULL, actor jsonb DEFAULT NULL,
  tenant text DEFAULT NULL, input jsonb DEFAULT NULL, schedule_in interval DEFAULT NULL,
  scheduled_at timestamptz DEFAULT NULL, priority integer DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
  reg {schema}.registry := {schema}._with_options(
    {schema}._registered(resource, 'trigger', trigger), input, schedule_in, scheduled_at, priority);
  stored jsonb;
  result record;
BEGIN
  IF primary_key IS NULL THEN  -- the scheduler, keyed as the cron's tick (never two waiting)
    IF num_nonnulls(input, schedule_in, scheduled_at, priority) > 0 THEN
      RAISE EXCEPTION 'jobd: input, schedule_in, scheduled_at and priority are options of a row''s job: give primary_key'
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'a scheduler run (no primary key) takes none of them';
    END IF;
    stored := {schema}._stored_actor(reg, actor);
    RETURN {schema}._insert_job(reg.scheduler_job, CASE WHEN stored IS NULL THEN '{}'::jsonb
                                                   ELSE jsonb_build_object('actor', stored) END);
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

-- Enqueue many rows' trigger jobs in one statement, each with the same options; the ids
-- inserted (rows that already have a job, or do not exist, get none).
CREATE OR REPLACE FUNCTION {schema}.run_triggers(
  resource text, trigger text, primary_keys jsonb, actor jsonb DEFAULT NULL,
  tenant text DEFAULT NULL, input jsonb DEFAULT NULL, schedule_in interval DEFAULT NULL,
  scheduled_at timestamptz DEFAULT NULL, priority integer DEFAULT NULL) RETURNS bigint[]
LANGUAGE sql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
  SELECT ({schema}._enqueue_trigger(
            {schema}._with_options({schema}._registered(resource, 'trigger', trigger),
                                   input, schedule_in, scheduled_at, priority),
            primary_keys, actor, tenant)).ids
$$;

-- Run a scheduled action now, as a cron tick does (jobd.triggers.jobs.schedule_job), or
-- once at a later time (schedule_in / scheduled_at: a one-off event, `scheduled` until
-- then): `input` merged over its action_input; on a multitenant resource a fan-out job
-- unless `tenant` is given.
CREATE OR REPLACE FUNCTION {schema}.run_schedule(
  resource text, name text, input jsonb DEFAULT NULL, actor jsonb DEFAULT NULL,
  tenant text DEFAULT NULL, schedule_in interval DEFAULT NULL,
  scheduled_at timestamptz DEFAULT NULL, priority integer DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
  reg {schema}.registry := {schema}._with_options(
    {schema}._registered(resource, 'schedule', name), input, schedule_in, scheduled_at, priority);
  args jsonb;
BEGIN
  PERFORM {schema}._check_tenant(reg, tenant, false);
  args := jsonb_build_object('input', coalesce(reg.job->'args'->'input', '{}'),
                             'actor', {schema}._stored_actor(reg, actor),
                             'tenant', tenant);
  IF reg.tenant_mode <> 'none' AND tenant IS NULL THEN
    args := args || '{"fanout": true}';
  END IF;
  RETURN {schema}._insert_job(reg.job - 'args', args);
END
$$;

-- Keep a job's unique key when an ack or the sweep releases it (uniq_key set to NULL),
-- in meta.uniq_key: `jobs retry` gives it back, so a retried job blocks its row again (and
-- is refused while another job holds the key).
CREATE OR REPLACE FUNCTION {schema}._keep_released_key() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, {schema}, pg_temp AS $$
BEGIN
  NEW.meta := NEW.meta || jsonb_build_object('uniq_key', OLD.uniq_key);
  RETURN NEW;
END
$$;

-- Its trigger, created once (a trigger is not replaced on every migrate: creating one
-- locks the jobs table). WHEN keeps it off the hot path of jobs without a key.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger
                  WHERE tgname = 'jobs_keep_released_key'
                    AND tgrelid = '{schema}.jobs'::regclass) THEN
    CREATE TRIGGER jobs_keep_released_key BEFORE UPDATE OF uniq_key ON {schema}.jobs
      FOR EACH ROW WHEN (OLD.uniq_key IS NOT NULL AND NEW.uniq_key IS NULL)
      EXECUTE FUNCTION {schema}._keep_released_key();
  END IF;
END
$$;
