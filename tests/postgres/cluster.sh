#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `cluster.sh start DIR` makes
# one under DIR (initdb), listening only on a Unix socket in DIR, and prints
# the connection string; `cluster.sh stop DIR` stops it (the caller removes
# DIR); `pause DIR` and `resume DIR` stop and start it again (the tests'
# PostgreSQL restart). Installs Debian's postgresql when initdb is missing. initdb refuses
# to run as root, so as root the cluster belongs to the `postgres` user.
set -euo pipefail
cmd=$1 dir=$2
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "installing Debian's postgresql" >&2
  (apt-get install -y -qq postgresql >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; })
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U admind --auth=trust -E UTF8 >/dev/null
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
      -o "-c listen_addresses='' -k $dir -p 5432 -c fsync=on -c max_connections=400" >/dev/null
    echo "host=$dir port=5432 user=admind dbname=postgres"
    ;;
  stop|pause)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
  resume)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
      -o "-c listen_addresses='' -k $dir -p 5432 -c fsync=on -c max_connections=400" >/dev/null
    ;;
esac
