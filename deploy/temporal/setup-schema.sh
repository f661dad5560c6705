#!/bin/sh
# One-shot (temporalio/admin-tools): creates Temporal's databases and brings both schemas to
# the version this server release needs, from the schemas built into temporal-sql-tool.
# Safe on every start: create-database ignores an existing database, setup-schema -v 0.0
# leaves a newer schema alone, and update-schema applies only missing versions.
# Connection: SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD (read by the tool).
set -eu
export SQL_PLUGIN="${SQL_PLUGIN:-postgres12}"
for pair in "${TEMPORAL_DB:-temporal}:temporal" "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}:visibility"; do
  database="${pair%%:*}"
  schema="postgresql/v12/${pair##*:}"
  echo "temporal schema: ${database} (${schema})"
  temporal-sql-tool --db "$database" create-database
  temporal-sql-tool --db "$database" setup-schema -v 0.0
  temporal-sql-tool --db "$database" update-schema --schema-name "$schema"
done
echo "temporal schema: up to date"
