# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/up and scripts/down. Source it, don't run it:
#
#   source scripts/lib.sh
#   ensure_postgres   # PostgreSQL on 127.0.0.1:5432; exports TEST_DATABASE_URL (superuser, over TCP)
#   ensure_redis      # Redis on 127.0.0.1:6379; exports TEST_REDIS_URL
#
# Both reuse a server that already answers, else start the installed one, else install it with
# apt-get (as root, or through sudo) and start it. No systemd is needed (works in containers).
# Idempotent; silent when everything is already there; one clear line on stderr on failure.
# Functions return non-zero on failure (they never `exit`), so sourcing this file into an
# interactive shell is safe; the scripts use `set -e`, which turns a failure into an exit.

TV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TV_PG_HOST=127.0.0.1
TV_PG_PORT=5432
TV_REDIS_HOST=127.0.0.1
TV_REDIS_PORT=6379
# How long to wait for a server we started to answer, in seconds.
: "${TV_WAIT_SECS:=60}"

tv_prog() { local p="${0##*/}"; [[ $p == -* || $p == bash ]] && p=taskvault; printf '%s' "$p"; }
# Progress line (only printed when something slow happens: an install or a start).
tv_say() { printf '%s: %s\n' "$(tv_prog)" "$*" >&2; }
# The one line printed on failure. Callers then `return 1`.
tv_fail() { printf '%s: error: %s\n' "$(tv_prog)" "$*" >&2; }

tv_have() { command -v "$1" >/dev/null 2>&1; }
tv_is_root() { [[ $(id -u) -eq 0 ]]; }
tv_can_root() { tv_is_root || tv_have sudo; }
# Run a command as root: directly when we are root, else through sudo.
tv_as_root() {
  if tv_is_root; then "$@"
  elif tv_have sudo; then sudo "$@"
  else return 127
  fi
}

# Make sure cargo is on PATH (rustup installs it in ~/.cargo/bin, which a non-login shell may miss).
tv_ensure_cargo() {
  if ! tv_have cargo && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    export PATH
  fi
  tv_have cargo || { tv_fail "cargo not found: install the Rust toolchain with rustup, then retry"; return 1; }
}

# Hide the password of a URL before printing it.
tv_redact_url() { printf '%s' "$1" | sed -E 's#^([a-z0-9+.-]+://[^:/@]*):[^@/]*@#\1:***@#'; }

TV_APT_UPDATED=
# tv_apt_install PKG...: install Debian packages quietly (log shown only on failure).
tv_apt_install() {
  tv_have apt-get || { tv_fail "apt-get not found: install $* yourself, then retry"; return 1; }
  tv_can_root || { tv_fail "installing $* needs root or sudo: install it yourself, then retry"; return 1; }
  local log
  log="$(mktemp "${TMPDIR:-/tmp}/taskvault-apt.XXXXXX")"
  tv_say "installing $* with apt-get (log: $log)"
  if [[ -z $TV_APT_UPDATED ]]; then
    if ! tv_as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null >>"$log" 2>&1; then
      tail -n 15 "$log" >&2
      tv_fail "'apt-get update' failed (full log: $log): fix apt, or install $* yourself"
      return 1
    fi
    TV_APT_UPDATED=1
  fi
  if ! tv_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
      </dev/null >>"$log" 2>&1; then
    tail -n 15 "$log" >&2
    tv_fail "'apt-get install $*' failed (full log: $log): install it yourself, then retry"
    return 1
  fi
  rm -f "$log"
}

# tv_tcp_open HOST PORT: something accepts TCP connections there.
tv_tcp_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" >/dev/null 2>&1
}

# tv_wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every half second until it succeeds.
tv_wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      tv_fail "$what did not become ready within ${secs}s"
      return 1
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------- PostgreSQL

tv_pg_ready() {
  if tv_have pg_isready; then
    pg_isready -q -h "$TV_PG_HOST" -p "$TV_PG_PORT" -t 3 >/dev/null 2>&1
  else
    tv_tcp_open "$TV_PG_HOST" "$TV_PG_PORT"
  fi
}

# tv_pg_url_ok URL: psql can log in with URL, without a password prompt, as a role that can
# CREATE DATABASE (tests create one database per test).
tv_pg_url_ok() {
  local out
  out="$(PGCONNECT_TIMEOUT=5 psql -w -X -q -A -t -d "$1" \
    -c "select 1 where (select rolsuper or rolcreatedb from pg_roles where rolname = current_user)" \
    </dev/null 2>/dev/null)" || return 1
  [[ $out == 1 ]]
}

# Newest installed server version, e.g. 15 (from /usr/lib/postgresql/<ver>/bin/postgres).
tv_pg_installed_version() {
  local bins=(/usr/lib/postgresql/*/bin/postgres)
  [[ -e ${bins[0]} ]] || return 1
  printf '%s\n' "${bins[@]}" | sed -E 's#^/usr/lib/postgresql/([^/]+)/.*#\1#' | sort -V | tail -n 1
}

# Newest version that has a "main" cluster, e.g. 15 (from /etc/postgresql/<ver>/main).
tv_pg_cluster_version() {
  local dirs=(/etc/postgresql/*/main)
  [[ -d ${dirs[0]} ]] || return 1
  printf '%s\n' "${dirs[@]}" | sed -E 's#^/etc/postgresql/([^/]+)/main$#\1#' | sort -V | tail -n 1
}

tv_pg_start_cluster() {
  local ver log
  if ! ver="$(tv_pg_cluster_version)"; then
    # Installed but no cluster (e.g. create_main_cluster=false): create the default one.
    ver="$(tv_pg_installed_version)" || { tv_fail "PostgreSQL server binaries not found under /usr/lib/postgresql: install the 'postgresql' package"; return 1; }
    tv_say "creating PostgreSQL $ver cluster 'main'"
    tv_as_root pg_createcluster "$ver" main >/dev/null ||
      { tv_fail "'pg_createcluster $ver main' failed: create a cluster on port $TV_PG_PORT yourself"; return 1; }
  fi
  tv_have pg_ctlcluster || { tv_fail "pg_ctlcluster not found: install the 'postgresql' package"; return 1; }
  tv_can_root || { tv_fail "starting PostgreSQL needs root or sudo: run 'pg_ctlcluster $ver main start' yourself"; return 1; }
  tv_say "starting PostgreSQL $ver (cluster main)"
  # /var/run/postgresql is on a tmpfs that a container may have lost; the server needs it.
  tv_as_root install -d -m 2775 -o postgres -g postgres /var/run/postgresql >/dev/null 2>&1 || true
  log="$(mktemp "${TMPDIR:-/tmp}/taskvault-pg.XXXXXX")"
  if ! tv_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start </dev/null >"$log" 2>&1; then
    # "already running" (e.g. started by the package's postinst, or on another port) is not fatal here;
    # the readiness wait below decides.
    if ! grep -qi 'already running' "$log"; then
      cat "$log" >&2
      rm -f "$log"
      tv_fail "'pg_ctlcluster $ver main start' failed (see above; log: /var/log/postgresql/postgresql-$ver-main.log)"
      return 1
    fi
  fi
  rm -f "$log"
}

# Work out a superuser URL over TCP and export TEST_DATABASE_URL (unless already set).
tv_pg_resolve_url() {
  if [[ -n ${TEST_DATABASE_URL:-} ]]; then
    tv_pg_url_ok "$TEST_DATABASE_URL" && return 0
    tv_fail "TEST_DATABASE_URL=$(tv_redact_url "$TEST_DATABASE_URL") does not log in as a role that can create databases: fix it or unset it"
    return 1
  fi
  local base="$TV_PG_HOST:$TV_PG_PORT/postgres" me url
  me="$(id -un 2>/dev/null || whoami)"
  local candidates=("postgres://postgres@$base" "postgres://$me@$base" "postgres://postgres:postgres@$base")
  for url in "${candidates[@]}"; do
    if tv_pg_url_ok "$url"; then
      export TEST_DATABASE_URL="$url"
      return 0
    fi
  done
  # A freshly installed Debian PostgreSQL wants a password over TCP (scram-sha-256 in pg_hba.conf) and
  # the postgres role has none: give it one, through the local socket (peer auth), and use it.
  local sql="ALTER USER postgres PASSWORD 'postgres'" set=
  if tv_is_root && tv_have runuser; then
    (cd / && runuser -u postgres -- psql -w -X -q -c "$sql" </dev/null >/dev/null 2>&1) && set=1
  elif tv_have sudo; then
    (cd / && sudo -u postgres psql -w -X -q -c "$sql" </dev/null >/dev/null 2>&1) && set=1
  fi
  url="postgres://postgres:postgres@$base"
  if [[ -n $set ]]; then
    tv_say "set the password of PostgreSQL role 'postgres' to 'postgres' (local development server)"
    if tv_pg_url_ok "$url"; then
      export TEST_DATABASE_URL="$url"
      return 0
    fi
  fi
  tv_fail "no superuser login to PostgreSQL on $TV_PG_HOST:$TV_PG_PORT (tried ${candidates[*]}): export TEST_DATABASE_URL=postgres://USER:PASSWORD@$base with a role that can CREATE DATABASE"
  return 1
}

# PostgreSQL on 127.0.0.1:5432, and TEST_DATABASE_URL exported.
ensure_postgres() {
  # A TEST_DATABASE_URL given by the caller that already works is used as it is (it may point at
  # another server); otherwise the local server is made to answer, and the URL checked after.
  if [[ -n ${TEST_DATABASE_URL:-} ]] && tv_have psql && tv_pg_url_ok "$TEST_DATABASE_URL"; then
    return 0
  fi
  if ! tv_pg_ready; then
    local -a dirs=(/etc/postgresql/*/main)
    if [[ ! -d ${dirs[0]} ]] && ! tv_pg_installed_version >/dev/null; then
      tv_apt_install postgresql || return 1
      # The package's postinst may have started it already (where an init script may run).
    fi
    if ! tv_pg_ready; then
      tv_pg_start_cluster || return 1
    fi
    tv_wait_for "$TV_WAIT_SECS" "PostgreSQL on $TV_PG_HOST:$TV_PG_PORT" tv_pg_ready ||
      { tv_fail "PostgreSQL is not answering on $TV_PG_HOST:$TV_PG_PORT: check /var/log/postgresql/ (is the cluster on another port?)"; return 1; }
  fi
  if ! tv_have psql; then
    tv_apt_install postgresql-client || return 1
  fi
  tv_pg_resolve_url
}

# ---------------------------------------------------------------------------------- Redis

tv_redis_ping() { # HOST PORT
  if tv_have redis-cli; then
    [[ $(timeout 5 redis-cli -h "$1" -p "$2" ping 2>/dev/null </dev/null) == PONG ]]
  else
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && IFS= read -r line <&3 && [[ $line == "+PONG"* ]]' \
      "$1" "$2" >/dev/null 2>&1
  fi
}
tv_redis_ready() { tv_redis_ping "$TV_REDIS_HOST" "$TV_REDIS_PORT"; }

# Redis on 127.0.0.1:6379, and TEST_REDIS_URL exported.
ensure_redis() {
  # A TEST_REDIS_URL given by the caller that already answers is used as it is.
  if [[ -n ${TEST_REDIS_URL:-} ]] && tv_have redis-cli &&
    [[ $(timeout 5 redis-cli -u "$TEST_REDIS_URL" ping 2>/dev/null </dev/null) == PONG ]]; then
    return 0
  fi
  if ! tv_redis_ready; then
    if tv_tcp_open "$TV_REDIS_HOST" "$TV_REDIS_PORT"; then
      tv_fail "something listens on $TV_REDIS_HOST:$TV_REDIS_PORT but does not answer a plain PING (a Redis with a password?): stop it, or export TEST_REDIS_URL and REDIS_URL for it"
      return 1
    fi
    if ! tv_have redis-server; then
      tv_apt_install redis-server || return 1
    fi
    if ! tv_redis_ready; then # the package's postinst may have started one
      local dir="${TMPDIR:-/tmp}/taskvault-redis"
      mkdir -p "$dir"
      tv_say "starting redis-server on $TV_REDIS_HOST:$TV_REDIS_PORT (log: $dir/redis.log)"
      redis-server --daemonize yes --bind "$TV_REDIS_HOST" --port "$TV_REDIS_PORT" --save "" --appendonly no \
        --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" </dev/null >/dev/null 2>&1 ||
        { tv_fail "redis-server failed to start (see $dir/redis.log): start Redis on $TV_REDIS_HOST:$TV_REDIS_PORT yourself"; return 1; }
    fi
    tv_wait_for "$TV_WAIT_SECS" "Redis on $TV_REDIS_HOST:$TV_REDIS_PORT" tv_redis_ready ||
      { tv_fail "Redis is not answering on $TV_REDIS_HOST:$TV_REDIS_PORT: see ${TMPDIR:-/tmp}/taskvault-redis/redis.log"; return 1; }
  fi
  export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://$TV_REDIS_HOST:$TV_REDIS_PORT}"
}

# ------------------------------------------------------------------- services (up / down)

# shellcheck disable=SC2034 # used by the scripts that source this file
TV_SERVICES=(auth-service job-service worker)
TV_DEV_DIR="$TV_ROOT/.dev"
# shellcheck disable=SC2034
TV_LOG_DIR="$TV_DEV_DIR/logs"
# shellcheck disable=SC2034
TV_PIDS_FILE="$TV_DEV_DIR/pids"

# The service packages that exist in the workspace right now (crates/<name>/Cargo.toml).
tv_existing_services() {
  local s
  for s in "${TV_SERVICES[@]}"; do
    [[ -f $TV_ROOT/crates/$s/Cargo.toml ]] && printf '%s\n' "$s"
  done
  return 0
}

# tv_pid_is PID NAME: PID is alive and runs a program called NAME (guards against pid reuse).
tv_pid_is() {
  local pid=$1 name=$2 comm
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/cmdline ]]; then
    comm="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")"
  else
    comm="$(ps -p "$pid" -o command= 2>/dev/null)"
  fi
  [[ $comm == *"$name"* ]]
}

# tv_stop_pids TIMEOUT NAME:PID...: SIGTERM each, wait up to TIMEOUT seconds for all, then SIGKILL.
tv_stop_pids() {
  local timeout=$1 entry name pid deadline alive
  shift
  for entry in "$@"; do
    name=${entry%%:*} pid=${entry##*:}
    tv_pid_is "$pid" "$name" && kill -TERM "$pid" 2>/dev/null
  done
  deadline=$((SECONDS + timeout))
  while :; do
    alive=()
    for entry in "$@"; do
      name=${entry%%:*} pid=${entry##*:}
      tv_pid_is "$pid" "$name" && alive+=("$entry")
    done
    ((${#alive[@]} == 0)) && return 0
    if ((SECONDS >= deadline)); then
      for entry in "${alive[@]}"; do
        tv_say "${entry%%:*} (pid ${entry##*:}) did not stop within ${timeout}s: killing it"
        kill -KILL "${entry##*:}" 2>/dev/null || true
      done
      return 0
    fi
    sleep 0.2
  done
}

# tv_worker_waiting LOG OFFSET: the last "waiting for N running jobs (up to Ns)" the worker wrote
# to LOG after byte OFFSET (its shutdown line), if any.
tv_worker_waiting() {
  tail -c +$(($2 + 1)) "$1" 2>/dev/null |
    grep -o 'waiting for [0-9]* running jobs\{0,1\} (up to [0-9]*s)' | tail -n 1 || true
}

# tv_stop_gracefully TIMEOUT NAME:PID...: SIGTERM each and wait up to TIMEOUT seconds, saying what
# is waited for: the processes, and the worker's running jobs (read from $TV_LOG_DIR/worker.log,
# or TV_WORKER_LOG). A Ctrl-C (SIGINT) or SIGTERM meanwhile stops everything at once: SIGTERM
# again (the worker then hands its running jobs back at once), and SIGKILL for whatever is still
# there TV_HURRY_SECS (3) seconds later. Returns when every process is gone. The caller's INT
# and TERM traps are replaced while it runs; set them again after it if needed.
tv_stop_gracefully() {
  local timeout=$1 hurry_secs=${TV_HURRY_SECS:-3}
  shift
  local log=${TV_WORKER_LOG:-$TV_LOG_DIR/worker.log} from=0 said= hurried= killed= note entry deadline
  local -a alive names=()
  TV_HURRY=
  [[ -f $log ]] && from=$(wc -c <"$log")
  trap 'TV_HURRY=1' INT TERM
  for entry in "$@"; do
    names+=("${entry%%:*}")
    tv_pid_is "${entry##*:}" "${entry%%:*}" && kill -TERM "${entry##*:}" 2>/dev/null
  done
  tv_say "waiting for ${names[*]} to stop (up to ${timeout}s; Ctrl-C stops at once)"
  deadline=$((SECONDS + timeout))
  while :; do
    alive=()
    for entry in "$@"; do
      tv_pid_is "${entry##*:}" "${entry%%:*}" && alive+=("$entry")
    done
    ((${#alive[@]} == 0)) && break
    if [[ -z $said ]]; then
      note=$(tv_worker_waiting "$log" "$from")
      if [[ -n $note ]]; then
        tv_say "worker: $note; Ctrl-C hands them back and stops at once"
        said=1
      fi
    fi
    if [[ -n $TV_HURRY && -z $hurried ]]; then
      hurried=1
      tv_say "stopping ${alive[*]%%:*} at once"
      for entry in "${alive[@]}"; do kill -TERM "${entry##*:}" 2>/dev/null || true; done
      ((SECONDS + hurry_secs < deadline)) && deadline=$((SECONDS + hurry_secs))
    fi
    if ((SECONDS >= deadline)); then
      [[ -n $killed ]] && break # not even SIGKILL helped (uninterruptible I/O): give up
      killed=1
      for entry in "${alive[@]}"; do
        tv_say "${entry%%:*} (pid ${entry##*:}) did not stop in time: killing it"
        kill -KILL "${entry##*:}" 2>/dev/null || true
      done
      deadline=$((SECONDS + 5)) # for the kill to take effect
      hurried=1
    fi
    sleep 0.2
  done
  trap - INT TERM
}

# ---------------------------------------------------------------------------- libfaketime

# tv_first_file PATH...: prints the first PATH that is an existing file (for globs that may match
# nothing), or nothing.
tv_first_file() {
  local path
  for path in "$@"; do
    if [[ -f $path ]]; then
      printf '%s\n' "$path"
      return 0
    fi
  done
}

# ensure_faketime: a test runs a worker whose clock is wrong (LD_PRELOAD of libfaketime);
# exports TEST_FAKETIME_LIB, installing the Debian package when it is missing.
ensure_faketime() {
  local lib
  # A glob, not `ls | head`: under `set -o pipefail` a failing `ls` would end the caller.
  lib="$(tv_first_file /usr/lib/*/faketime/libfaketime.so.1)"
  if [[ -z $lib ]]; then
    tv_apt_install libfaketime || return 1
    lib="$(tv_first_file /usr/lib/*/faketime/libfaketime.so.1)"
  fi
  [[ -n $lib ]] || { tv_fail "libfaketime.so.1 not found after installing libfaketime"; return 1; }
  export TEST_FAKETIME_LIB="$lib"
}

# tv_python_venv DIR REQUIREMENT...: a Python virtualenv at DIR with the given pip requirements
# (installed once; a marker file remembers which). For the offline checks of deploy/ and the
# OpenAPI documents.
tv_python_venv() {
  local dir=$1
  shift
  local want="$*"
  if [[ -x $dir/bin/python && -f $dir/.requirements && $(cat "$dir/.requirements") == "$want" ]]; then
    return 0
  fi
  tv_have python3 || tv_apt_install python3 || return 1
  python3 -c 'import venv, ensurepip' 2>/dev/null || tv_apt_install python3-venv || return 1
  python3 -m venv "$dir" || { tv_fail "could not create a Python virtualenv in $dir"; return 1; }
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" \
    || { tv_fail "pip could not install $want"; return 1; }
  printf '%s' "$want" >"$dir/.requirements"
}
