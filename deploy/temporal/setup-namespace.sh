#!/bin/sh
# One-shot (temporalio/admin-tools, `temporal` CLI): creates the namespace if it is missing
# and registers the checkout search attributes. Safe on every start: an existing namespace is
# kept, and the CLI skips attributes that already exist with the same type.
# The namespace keeps closed workflows RETENTION_DAYS, as long as the database keeps closed
# orders (docs/operations.md, "Retention"); set on every run, so a changed RETENTION_DAYS applies.
# Needs TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and RETENTION_DAYS; TEMPORAL_CLI (default `temporal`) for tests.
set -eu
: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS must be set}"
: "${TEMPORAL_NAMESPACE:?TEMPORAL_NAMESPACE must be set}"
: "${RETENTION_DAYS:?RETENTION_DAYS must be set (the days closed orders are kept)}"
cli="${TEMPORAL_CLI:-temporal}"
retention="${RETENTION_DAYS}d"

# The frontend can answer before it serves; wait (bounded) until it does.
attempt=0
until "$cli" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "temporal namespace: server at $TEMPORAL_ADDRESS not serving after 60 tries" >&2
    exit 1
  fi
  sleep 2
done

if "$cli" operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  echo "temporal namespace: $TEMPORAL_NAMESPACE exists"
  "$cli" operator namespace update --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" --retention "$retention" >/dev/null
else
  "$cli" operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" --retention "$retention"
fi

# A new namespace takes a moment to reach every frontend; retry until the attributes are in.
attempt=0
until "$cli" operator search-attribute create --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" \
  --name OrderStatus --type Keyword \
  --name CustomerId --type Keyword \
  --name PaymentDeadline --type Datetime; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 30 ]; then
    echo "temporal namespace: could not register search attributes" >&2
    exit 1
  fi
  sleep 2
done
echo "temporal namespace: $TEMPORAL_NAMESPACE ready with OrderStatus, CustomerId, PaymentDeadline; retention $retention"
