-- What the application's role may do (README "Integrity").
-- After every `coinpurse migrate`, as coinpurse_owner in the database (months made later by
-- `coinpurse partitions ensure` get no privileges for coinpurse_app, as it should be):
--   psql -v ON_ERROR_STOP=1 -f docs/postgres/grants.sql
GRANT USAGE ON SCHEMA public TO coinpurse_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO coinpurse_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO coinpurse_app;
-- The ledger and the audit log are append-only: read and add, never change or remove.
-- (The triggers of migration 0115_reconcile refuse it too, the owner included.) The
-- per-account totals of archived months are written by the owner only (partitions detach).
REVOKE UPDATE, DELETE, TRUNCATE ON transactions, entries, ledger_seals, audit_log
    FROM coinpurse_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON archived_entry_totals FROM coinpurse_app;
-- The months of the partitioned history tables (and detached months still kept): the
-- application reaches them through their parent only, so it needs nothing on them.
DO $months$
DECLARE t record;
BEGIN
  FOR t IN SELECT c.oid::regclass::text AS name FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind = 'r'
        AND c.relname ~ '^(transactions|entries)_y[0-9]{4}m[0-9]{2}$'
  LOOP
    EXECUTE format('REVOKE ALL ON %s FROM coinpurse_app', t.name);
  END LOOP;
END
$months$;
-- Only the migration role moves the schema's version.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM coinpurse_app;
