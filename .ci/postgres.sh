#!/usr/bin/env bash
# Start a local PostgreSQL server for the storage tests; prints the URL to use.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
version=$(ls /etc/postgresql | sort -n | tail -1)
pg_ctlcluster "$version" main start >&2 2>/dev/null || pg_ctlcluster "$version" main status >&2
for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q" && break
  sleep 0.5
done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='search'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE search LOGIN PASSWORD 'search'\"" >&2
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='search_test'\"" | grep -q 1 ||
  su postgres -c "createdb -O search search_test" >&2
echo "postgresql://search:search@127.0.0.1:5432/search_test"
