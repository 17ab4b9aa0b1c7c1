#!/usr/bin/env bash
# Make sure a PostgreSQL server is running for the tests and print its URL (for WF_TEST_POSTGRES).
# Debian: installs the `postgresql` package if missing, starts the cluster if stopped, and
# gives the postgres role a password when the server does not trust local TCP connections.
set -euo pipefail
HOSTPORT="127.0.0.1:5432"
TRUST_URL="postgresql://postgres@$HOSTPORT/postgres"
PASSWORD_URL="postgresql://postgres:wf-ci@$HOSTPORT/postgres"

if [ -n "${WF_TEST_POSTGRES:-}" ]; then echo "$WF_TEST_POSTGRES"; exit 0; fi

say() { echo "postgres: $*" >&2; }
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
works() { psql "$1" -qtAc 'SELECT 1' >/dev/null 2>&1; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  say "installing the postgresql package"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
if ! ready; then
  if [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    say "creating cluster $version/main"
    pg_createcluster "$version" main >&2
  fi
  for version in $(ls /etc/postgresql); do
    say "starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  done
  for _ in $(seq 1 60); do ready && break; sleep 0.5; done
fi
ready || { say "the server did not come up on $HOSTPORT"; exit 1; }

if works "$TRUST_URL"; then echo "$TRUST_URL"; exit 0; fi
if ! works "$PASSWORD_URL"; then
  say "setting a password for the postgres role (the server does not trust local TCP)"
  runuser -u postgres -- psql -qc "ALTER ROLE postgres PASSWORD 'wf-ci'" >&2
fi
works "$PASSWORD_URL" || { say "cannot log in to $HOSTPORT as postgres"; exit 1; }
echo "$PASSWORD_URL"
