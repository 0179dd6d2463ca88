-- What the application's role may do (README "Integrity").
-- After every `coinpurse migrate`, as coinpurse_owner in the database:
--   psql -v ON_ERROR_STOP=1 -f docs/postgres/grants.sql
GRANT USAGE ON SCHEMA public TO coinpurse_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO coinpurse_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO coinpurse_app;
-- The ledger and the audit log are append-only: read and add, never change or remove.
-- (The triggers of migration 0115_reconcile refuse it too, the owner included.)
REVOKE UPDATE, DELETE, TRUNCATE ON transactions, entries, ledger_seals, audit_log
    FROM coinpurse_app;
-- Only the migration role moves the schema's version.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM coinpurse_app;
