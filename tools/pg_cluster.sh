#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on 127.0.0.1 for tests and the bench (no systemd).
#   tools/pg_cluster.sh start DIR [PORT]   prints the URL the tests read as BL_TEST_DATABASE_URL
#   tools/pg_cluster.sh stop DIR
#   tools/pg_cluster.sh crash DIR          stops the server at once (pg_ctl -m immediate), keeping its data
#   tools/pg_cluster.sh restart DIR PORT   starts a crashed cluster's server again on PORT
# Installs Debian's postgresql-15 when its binaries are missing (needs root and apt).
# fsync is off (a test cluster) unless PG_FSYNC=on, as the bench sets it.
# start and stop replace or remove only a folder this script made (it holds the marker file .pg_cluster); start also
# takes a new or empty folder. Any other folder is refused (exit 2), with nothing deleted.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?cluster folder}
port=${3:-54329}
marker=.pg_cluster

# Exits 2 with one line unless $dir is a folder this script made, or (for start) a new or empty one.
ours_or_empty() {
  local verb=$1
  [ -e "$dir" ] || [ -L "$dir" ] || return 0
  if [ -L "$dir" ] || [ ! -d "$dir" ]; then
    echo "pg_cluster.sh: refusing to $verb $dir: it is not a folder" >&2
    exit 2
  fi
  [ -f "$dir/$marker" ] && return 0
  local names
  names=$(ls -A -- "$dir")
  [ -z "$names" ] && return 0
  local shown
  shown=$(printf '%s\n' "$names" | head -n 3 | paste -sd, - | sed 's/,/, /g')
  [ "$(printf '%s\n' "$names" | wc -l)" -gt 3 ] && shown="$shown, ..."
  local hint="give a new or empty folder"
  [ "$verb" = remove ] && hint="nothing was stopped or removed"
  echo "pg_cluster.sh: refusing to $verb $dir: it holds files this script did not create ($shown), and no $marker; $hint" >&2
  exit 2
}

bindir=""
for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
  if [ -x "$d/initdb" ]; then bindir=$d; break; fi
done

case "$cmd" in
start)
  ours_or_empty replace
  if [ -z "$bindir" ]; then
    echo "Installing postgresql-15 with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
    bindir=/usr/lib/postgresql/15/bin
  fi
  if [ -f "$dir/$marker" ]; then
    # A cluster this script made: its server, if still up, is stopped before its folder is replaced.
    if [ -f "$dir/data/postmaster.pid" ]; then
      run=()
      [ "$(id -u)" = 0 ] && run=(setpriv --reuid="$(stat -c %U "$dir")" --regid="$(stat -c %g "$dir")" --clear-groups)
      "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
  fi
  # The first free port from $port on.
  while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  mkdir -p "$dir"
  echo "made by tools/pg_cluster.sh: 'tools/pg_cluster.sh stop' removes this folder" >"$dir/$marker"
  # initdb refuses to run as root: the cluster belongs to an unprivileged user.
  run=()
  if [ "$(id -u)" = 0 ]; then
    owner=postgres
    id -u "$owner" >/dev/null 2>&1 || owner=nobody
    chown "$owner" "$dir"
    run=(setpriv --reuid="$owner" --regid="$(id -g "$owner")" --clear-groups)
  fi
  "${run[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${PG_FSYNC:-off} -c max_connections=100" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
crash)
  run=()
  [ "$(id -u)" = 0 ] && run=(setpriv --reuid="$(stat -c %U "$dir")" --regid="$(stat -c %g "$dir")" --clear-groups)
  "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  ;;
restart)
  run=()
  [ "$(id -u)" = 0 ] && run=(setpriv --reuid="$(stat -c %U "$dir")" --regid="$(stat -c %g "$dir")" --clear-groups)
  "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${PG_FSYNC:-off} -c max_connections=100" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  ;;
stop)
  ours_or_empty remove
  [ -f "$dir/$marker" ] || exit 0
  if [ -d "$dir/data" ] && [ -n "$bindir" ]; then
    run=()
    [ "$(id -u)" = 0 ] && run=(setpriv --reuid="$(stat -c %U "$dir")" --regid="$(stat -c %g "$dir")" --clear-groups)
    "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop|crash|restart DIR [PORT]" >&2
  exit 2
  ;;
esac
