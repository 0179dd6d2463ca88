-- Least privilege for Coinpurse on PostgreSQL (README "Integrity").
-- Once, as a superuser:  psql -v ON_ERROR_STOP=1 -f docs/postgres/roles.sql
-- then give both roles a password (ALTER ROLE ... PASSWORD '...') or another way in.

-- Runs `coinpurse migrate`: owns the database, its schema and every table.
CREATE ROLE coinpurse_owner LOGIN;
-- Runs `coinpurse serve` and `coinpurse worker` (COINPURSE_DATABASE_URL names it). It owns
-- nothing, so it cannot alter the schema, drop or disable a trigger, or grant itself more.
CREATE ROLE coinpurse_app LOGIN;
CREATE DATABASE coinpurse OWNER coinpurse_owner;
