-- run_trigger, run_triggers and run_schedule take the options of a programmatic enqueue:
-- input, schedule_in, scheduled_at and priority (issue 15), as parameters with DEFAULTs
-- after the old ones, so every old call still works. CREATE OR REPLACE cannot change a
-- function's parameter list (it would add an overload, and a five-argument call would
-- then be ambiguous), so the old signatures are dropped here, and the new ones created
-- with a placeholder body that functions.sql (applied after the migrations) replaces:
-- CREATE OR REPLACE keeps a function's privileges, so the grants of the old functions
-- are given to the new ones here (an EXECUTE revoked from PUBLIC stays revoked, a role's
-- grant stays), and an application's role keeps what it had.

-- The old functions' privileges, where they are not the default (NULL: EXECUTE to PUBLIC).
CREATE TEMP TABLE jobd_004_grants ON COMMIT DROP AS
SELECT p.proname::text AS name, p.proacl AS acl, p.proowner AS owner
  FROM pg_catalog.pg_proc AS p
 WHERE p.pronamespace = '{schema}'::regnamespace
   AND p.proname IN ('run_trigger', 'run_triggers', 'run_schedule')
   AND p.pronargs = 5
   AND p.proacl IS NOT NULL;

DROP FUNCTION IF EXISTS {schema}.run_trigger(text, text, jsonb, jsonb, text);
DROP FUNCTION IF EXISTS {schema}.run_triggers(text, text, jsonb, jsonb, text);
DROP FUNCTION IF EXISTS {schema}.run_schedule(text, text, jsonb, jsonb, text);

-- Placeholders with exactly functions.sql's signatures (names, types, defaults).
CREATE FUNCTION {schema}.run_trigger(
  resource text, trigger text, primary_key jsonb DEFAULT NULL, actor jsonb DEFAULT NULL,
  tenant text DEFAULT NULL, input jsonb DEFAULT NULL, schedule_in interval DEFAULT NULL,
  scheduled_at timestamptz DEFAULT NULL, priority integer DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS 'SELECT NULL::bigint';
CREATE FUNCTION {schema}.run_triggers(
  resource text, trigger text, primary_keys jsonb, actor jsonb DEFAULT NULL,
  tenant text DEFAULT NULL, input jsonb DEFAULT NULL, schedule_in interval DEFAULT NULL,
  scheduled_at timestamptz DEFAULT NULL, priority integer DEFAULT NULL) RETURNS bigint[]
LANGUAGE sql AS 'SELECT NULL::bigint[]';
CREATE FUNCTION {schema}.run_schedule(
  resource text, name text, input jsonb DEFAULT NULL, actor jsonb DEFAULT NULL,
  tenant text DEFAULT NULL, schedule_in interval DEFAULT NULL,
  scheduled_at timestamptz DEFAULT NULL, priority integer DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS 'SELECT NULL::bigint';

-- The old functions' privileges on the new ones, each as it was (owner aside); a function
-- whose privileges were the default keeps the default.
DO $$
DECLARE
  old record;
  item record;
  sig text;
BEGIN
  FOR old IN SELECT * FROM pg_temp.jobd_004_grants LOOP
    sig := CASE old.name
      WHEN 'run_schedule' THEN
        '{schema}.run_schedule(text, text, jsonb, jsonb, text, interval, timestamptz, integer)'
      ELSE format('{schema}.%s(text, text, jsonb, jsonb, text, jsonb, interval, timestamptz, integer)',
                  old.name)
    END;
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', sig);
    FOR item IN SELECT a.grantee, a.privilege_type FROM pg_catalog.aclexplode(old.acl) AS a
                 WHERE a.grantee <> old.owner LOOP
      EXECUTE format('GRANT %s ON FUNCTION %s TO %s', item.privilege_type, sig,
                     CASE item.grantee WHEN 0 THEN 'PUBLIC' ELSE item.grantee::regrole::text END);
    END LOOP;
  END LOOP;
END
$$;
