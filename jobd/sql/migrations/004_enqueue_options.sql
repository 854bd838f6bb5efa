-- run_trigger, run_triggers and run_schedule take the options of a programmatic enqueue:
-- input, schedule_in, scheduled_at and priority (issue 15), as parameters with DEFAULTs
-- after the old ones, so every old call still works. CREATE OR REPLACE cannot change a
-- function's parameter list (it would add an overload, and a five-argument call would
-- then be ambiguous), so the old signatures are dropped here; functions.sql, applied
-- after the migrations, creates the new ones. EXECUTE granted to PUBLIC (the default)
-- comes back with them; a grant given by hand on the old functions must be given again.
DROP FUNCTION IF EXISTS {schema}.run_trigger(text, text, jsonb, jsonb, text);
DROP FUNCTION IF EXISTS {schema}.run_triggers(text, text, jsonb, jsonb, text);
DROP FUNCTION IF EXISTS {schema}.run_schedule(text, text, jsonb, jsonb, text);
