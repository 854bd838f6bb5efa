-- jobd's own tables, as a fresh install gets them. `{schema}` is replaced by the quoted
-- schema name (database.schema, default jobd). This is release 0.1's schema (migration
-- versions 1 and 2) with every later migration folded in, all recorded as applied; the
-- numbered files in migrations/ bring an older install to exactly this, and
-- tests/integration/engine/test_migrations.py proves it. Functions: functions.sql.

CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TYPE {schema}.job_state AS ENUM (
  'available', 'scheduled', 'executing', 'retryable', 'completed', 'discarded', 'cancelled'
);

-- The jobs table mirrors Oban's oban_jobs, plus the unique-key columns our guarantees need.
CREATE TABLE {schema}.jobs (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  state         {schema}.job_state NOT NULL DEFAULT 'available',
  queue         text NOT NULL DEFAULT 'default',
  worker        text NOT NULL,
  args          jsonb NOT NULL DEFAULT '{}',
  meta          jsonb NOT NULL DEFAULT '{}',
  tags          text[] NOT NULL DEFAULT '{}',
  errors        jsonb[] NOT NULL DEFAULT '{}',
  attempt       integer NOT NULL DEFAULT 0,
  max_attempts  integer NOT NULL DEFAULT 20,
  priority      smallint NOT NULL DEFAULT 0,
  inserted_at   timestamptz NOT NULL DEFAULT now(),
  scheduled_at  timestamptz NOT NULL DEFAULT now(),
  attempted_at  timestamptz,
  attempted_by  text,
  completed_at  timestamptz,
  discarded_at  timestamptz,
  cancelled_at  timestamptz,
  -- Uniqueness: while uniq_key is not NULL the partial unique index below blocks a second
  -- job with the same key. Acks clear it when the job leaves the states that block:
  -- incomplete states always block; uniq_hold names the terminal states that keep
  -- blocking and for how long, e.g. {"completed": null, "discarded": 3600} (seconds,
  -- null = while the job is retained). A sweeper clears holds that have expired.
  uniq_key      text,
  uniq_hold     jsonb NOT NULL DEFAULT '{}',
  CONSTRAINT attempt_range CHECK (attempt >= 0 AND attempt <= max_attempts),
  CONSTRAINT positive_max_attempts CHECK (max_attempts > 0),
  CONSTRAINT priority_range CHECK (priority BETWEEN 0 AND 9),
  CONSTRAINT queue_length CHECK (char_length(queue) BETWEEN 1 AND 128),
  CONSTRAINT worker_length CHECK (char_length(worker) BETWEEN 1 AND 256)
) WITH (
  -- A hot queue table: vacuum and analyze early so dead tuples from acks do not pile up.
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_limit = 2000,
  fillfactor = 85
);

-- The constraint behind "one job per key at a time": no race between two inserters.
CREATE UNIQUE INDEX jobs_uniq_key ON {schema}.jobs (uniq_key) WHERE uniq_key IS NOT NULL;

-- Fetch: available jobs of a queue in priority, schedule, id order.
CREATE INDEX jobs_fetch ON {schema}.jobs (queue, priority, scheduled_at, id)
  WHERE state = 'available';

-- Staging: scheduled and retryable jobs whose time has come.
CREATE INDEX jobs_stage ON {schema}.jobs (scheduled_at, id)
  WHERE state IN ('scheduled', 'retryable');

-- Lifeline: executing jobs by the node that claimed them.
CREATE INDEX jobs_executing ON {schema}.jobs (attempted_by)
  WHERE state = 'executing';

-- Pruning and hold expiry: terminal jobs by state and age.
CREATE INDEX jobs_terminal ON {schema}.jobs (state, coalesce(completed_at, cancelled_at, discarded_at))
  WHERE state IN ('completed', 'cancelled', 'discarded');

-- Pending jobs by worker (CLI, API, status). Partial on purpose: an UPDATE that is not
-- HOT adds an entry to every index whose predicate the new row version satisfies, so a
-- full (worker, state) index would cost every claim and every ack one more index insert
-- (measured: about a quarter of the engine's write throughput). Listing terminal jobs by
-- worker is rare and may scan.
CREATE INDEX jobs_worker_pending ON {schema}.jobs (worker, state)
  WHERE state IN ('available', 'scheduled', 'retryable');

-- Nodes: one row per running engine process, kept alive by heartbeats.
CREATE TABLE {schema}.nodes (
  id            text PRIMARY KEY,
  name          text NOT NULL,
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  meta          jsonb NOT NULL DEFAULT '{}'
);

-- The leader lease: at most one row per lease name; the holder renews before expires_at.
CREATE TABLE {schema}.leader (
  name        text PRIMARY KEY DEFAULT 'jobd',
  node_id     text NOT NULL,
  elected_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);

-- Queue settings changed at runtime (pause, resume, scale); every node reads them.
CREATE TABLE {schema}.queues (
  name          text PRIMARY KEY,
  paused        boolean NOT NULL DEFAULT false,
  local_limit   integer CHECK (local_limit IS NULL OR local_limit > 0),
  global_limit  integer CHECK (global_limit IS NULL OR global_limit > 0),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Cron ledger: the last tick enqueued per cron entry. Advancing it and inserting the
-- tick's job happen in one transaction, so a tick is enqueued once across all nodes
-- and leader changes, and catch-up knows which ticks were missed.
CREATE TABLE {schema}.crons (
  name        text PRIMARY KEY,
  last_tick   timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Applied migrations; a fresh install records every migration as applied.
CREATE TABLE {schema}.migrations (
  version     integer PRIMARY KEY,
  name        text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
);

-- The SQL API's registry: the configuration's triggers and scheduled actions as the
-- functions of functions.sql need them, rewritten by jobd.triggers.sql_api.sync_registry.
-- Deleted ones too: a call naming one is refused clearly.
CREATE TABLE {schema}.registry (
  resource          text NOT NULL,
  kind              text NOT NULL CHECK (kind IN ('trigger', 'schedule')),
  name              text NOT NULL,
  state             text NOT NULL CHECK (state IN ('active', 'paused', 'deleted')),
  -- Job templates (jobd.triggers.jobs: worker, queue, priority, max_attempts, uniq_key,
  -- uniq_hold, args): the trigger's worker job or the schedule's run, and for a trigger
  -- its scheduler's job.
  job               jsonb NOT NULL,
  scheduler_job     jsonb,
  -- The resource's table as the writer resolved it (NULL schema: the tenant's, strategy
  -- schema, or via the search_path when the table did not exist yet).
  table_schema      text,
  table_name        text NOT NULL,
  primary_key       text[],  -- NULL: read from the catalog at call time
  tenant_mode       text NOT NULL CHECK (tenant_mode IN ('none', 'attribute', 'schema', 'record')),
  tenant_attribute  text,
  actor_store       text[],  -- the persister's `store` fields; NULL: the whole actor
  default_actor     jsonb,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (resource, kind, name)
);
