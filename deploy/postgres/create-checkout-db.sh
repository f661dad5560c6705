#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d):
# the app gets its own role and database, so it can never touch Temporal's databases.
set -eu
: "${CHECKOUT_DB_PASSWORD:?CHECKOUT_DB_PASSWORD must be set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=password="$CHECKOUT_DB_PASSWORD" <<'SQL'
CREATE ROLE checkout LOGIN PASSWORD :'password';
CREATE DATABASE checkout OWNER checkout;
REVOKE ALL ON DATABASE checkout FROM PUBLIC;
SQL
