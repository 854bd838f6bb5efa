-- The SQL API's registry becomes one table whose rows carry job templates
-- (jobd.triggers.jobs), for triggers and scheduled actions alike. The registry is derived
-- data, rewritten by every `jobd run` and `jobd migrate -c`: the old tables are dropped,
-- not converted (with the 0.1 functions that took their row types; functions.sql, applied
-- after the migrations, creates the new ones).
DROP TABLE {schema}.trigger_registry CASCADE;
DROP TABLE {schema}.schedule_registry CASCADE;

CREATE TABLE {schema}.registry (
  resource          text NOT NULL,
  kind              text NOT NULL CHECK (kind IN ('trigger', 'schedule')),
  name              text NOT NULL,
  state             text NOT NULL CHECK (state IN ('active', 'paused', 'deleted')),
  job               jsonb NOT NULL,
  scheduler_job     jsonb,
  table_schema      text,
  table_name        text NOT NULL,
  primary_key       text[],
  tenant_mode       text NOT NULL CHECK (tenant_mode IN ('none', 'attribute', 'schema', 'record')),
  tenant_attribute  text,
  actor_store       text[],
  default_actor     jsonb,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (resource, kind, name)
);
