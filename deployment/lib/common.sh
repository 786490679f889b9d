# shellcheck shell=bash
#
# Helpers shared by the scripts in deployment/. This file is sourced, never
# run: each script sets SCRIPT_NAME (used to prefix its messages) and then
# sources it.
#
# Runtime state lives under one directory, var/ at the repository root by
# default (gitignored). Set SAGAFLOW_VAR to use another one; a relative path
# is taken relative to the current directory. Layout:
#
#   var/kafka/libs/              broker jars (deployment/kafka/fetch)
#   var/kafka/data/              broker storage (KRaft metadata and topic logs)
#   var/kafka/server.properties  generated broker configuration
#   var/kafka/cluster.id         cluster id the storage was formatted with
#   var/log/<name>.log           output of the broker and of each service
#   var/run/<name>.pid           pid of each process started in the background
#   var/data/<service>/          local state of each service

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  echo "deployment/lib/common.sh is sourced by the deployment scripts and is not meant to be run." >&2
  echo "See deployment/up --help, deployment/down --help or make help." >&2
  exit 2
fi

SCRIPT_NAME=${SCRIPT_NAME:-$(basename "$0")}

SAGAFLOW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPLOY_DIR=$SAGAFLOW_ROOT/deployment
SAGAFLOW_VAR=$(realpath -m "${SAGAFLOW_VAR:-$SAGAFLOW_ROOT/var}")
export SAGAFLOW_VAR # scripts calling each other must agree on the directory

VAR_LOG=$SAGAFLOW_VAR/log
VAR_RUN=$SAGAFLOW_VAR/run
VAR_DATA=$SAGAFLOW_VAR/data
# The admin token of the services' POST /set and POST /stock (mode 0600).
ADMIN_TOKEN_FILE=$SAGAFLOW_VAR/admin-token
KAFKA_HOME=$SAGAFLOW_VAR/kafka
# SAGAFLOW_KAFKA_LIBS puts the jars elsewhere, e.g. to share the repository's
# var/kafka/libs with a broker that runs under another SAGAFLOW_VAR.
if [[ -n ${SAGAFLOW_KAFKA_LIBS:-} ]]; then
  KAFKA_LIBS=$(realpath -m "$SAGAFLOW_KAFKA_LIBS")
else
  KAFKA_LIBS=$KAFKA_HOME/libs
fi
KAFKA_DATA=$KAFKA_HOME/data

# The broker always listens on the loopback interface, by default on these
# ports (SAGAFLOW_KAFKA_PORT and SAGAFLOW_KAFKA_CONTROLLER_PORT override them,
# e.g. for a test's own broker next to the development one).
KAFKA_HOST=127.0.0.1
KAFKA_PORT=${SAGAFLOW_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${SAGAFLOW_KAFKA_CONTROLLER_PORT:-9093}
SAGAFLOW_BROKERS=$KAFKA_HOST:$KAFKA_PORT

# The services binary; overridable to run the scripts against another build.
SAGAFLOW_BIN=${SAGAFLOW_BIN:-$SAGAFLOW_ROOT/build/bin/sagaflow}

# The services in start order, and the HTTP port of each: 8281..8285 unless
# SAGAFLOW_HTTP_PORT_BASE moves them (base + 1 .. base + 5; default 8280).
SERVICES=(order orchestrator warehouse payment notification)
HTTP_PORT_BASE=${SAGAFLOW_HTTP_PORT_BASE:-8280}
[[ $HTTP_PORT_BASE =~ ^[0-9]+$ ]] || HTTP_PORT_BASE=8280
declare -A SERVICE_PORT=(
  [order]=$((HTTP_PORT_BASE + 1))
  [orchestrator]=$((HTTP_PORT_BASE + 2))
  [warehouse]=$((HTTP_PORT_BASE + 3))
  [payment]=$((HTTP_PORT_BASE + 4))
  [notification]=$((HTTP_PORT_BASE + 5))
)

say() { printf '%s: %s\n' "$SCRIPT_NAME" "$*"; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

# require_cmd CMD HINT: fail with HINT unless CMD is on the PATH.
require_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"
}

# append_broker_properties FILE: append the file named by
# SAGAFLOW_KAFKA_BROKER_PROPERTIES, if set, to a broker configuration being
# generated (java.util.Properties: a later line wins over an earlier one).
append_broker_properties() {
  local extra=${SAGAFLOW_KAFKA_BROKER_PROPERTIES:-}
  [[ -n $extra ]] || return 0
  [[ -f $extra && -r $extra ]] || die "SAGAFLOW_KAFKA_BROKER_PROPERTIES=$extra: not a readable file"
  {
    printf '\n# Appended from SAGAFLOW_KAFKA_BROKER_PROPERTIES=%s (a later line wins)\n' "$extra"
    cat "$extra"
  } >>"$1"
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
  timeout 2 bash -c ': <>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# http_ok URL: true when GET URL answers 200.
http_ok() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null) || return 1
  [[ $code == 200 ]]
}

# proc_is NAME PID: true when PID is alive and is the process NAME ("kafka"
# for the broker, "kafka-N" for node N of a cluster, otherwise a service name). Checking the command line, not
# only the pid, keeps a stale pid file that points at a recycled pid from
# being mistaken for our process. Zombies have an empty command line, so they
# count as gone.
proc_is() {
  local name=$1 pid=$2 cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  case $name in
    kafka | kafka-[0-9]*) [[ $cmd == *" kafka.Kafka "* ]] ;; # the broker, or node N of a cluster
    # Instance N > 1 of a service is named "<service>-N" (deployment/up --instances).
    *) [[ $cmd == *sagaflow" ${name%-[0-9]*} "* ]] ;;
  esac
}

# running_pid NAME: print the pid of NAME if its pid file names a live
# process of that name; otherwise remove a stale pid file and return 1.
running_pid() {
  local name=$1 pidfile=$VAR_RUN/$1.pid pid=""
  [[ -f $pidfile ]] || return 1
  read -r pid <"$pidfile" 2>/dev/null || true
  if proc_is "$name" "$pid"; then
    printf '%s\n' "$pid"
    return 0
  fi
  rm -f "$pidfile"
  return 1
}

# ensure_admin_token: write a random admin token to $ADMIN_TOKEN_FILE
# (mode 0600) unless one is there already.
ensure_admin_token() {
  [[ -s $ADMIN_TOKEN_FILE ]] && return 0
  mkdir -p "$(dirname "$ADMIN_TOKEN_FILE")"
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$ADMIN_TOKEN_FILE" && echo >>"$ADMIN_TOKEN_FILE")
}

# rotate_log FILE: keep one previous generation (FILE.1) so every start
# begins with an empty log.
rotate_log() {
  if [[ -s $1 ]]; then mv -f "$1" "$1.1"; fi
}

# show_log_tail FILE [LINES]: print the end of a log to stderr.
show_log_tail() {
  local file=$1 lines=${2:-40}
  {
    echo "----- last $lines lines of $file -----"
    if [[ -f $file ]]; then tail -n "$lines" "$file"; else echo "(no log file)"; fi
    echo "----- end of $file -----"
  } >&2
}

# spawn_detached NAME LOGFILE COMMAND...: start COMMAND in the background in
# a session of its own (so a Ctrl+C in the terminal does not reach it and it
# survives the caller), stdin from /dev/null, stdout and stderr appended to
# LOGFILE. The process writes its own pid to var/run/NAME.pid before exec,
# so the pid file always names the real process. Sets SPAWNED_PID.
spawn_detached() {
  local name=$1 log=$2
  shift 2
  local pidfile=$VAR_RUN/$name.pid
  mkdir -p "$VAR_RUN" "$(dirname "$log")"
  rm -f "$pidfile"
  # The outer subshell exits at once, so the process is not our child; fd 9
  # (used for locks by some callers) is closed so it does not hold the lock.
  (
    setsid bash -c 'printf "%s\n" "$$" >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' \
      "$pidfile" "$@" </dev/null >>"$log" 2>&1 9>&- &
  )
  local i
  SPAWNED_PID=""
  for ((i = 0; i < 50; i++)); do
    if [[ -s $pidfile ]]; then
      read -r SPAWNED_PID <"$pidfile" || true
      [[ -n $SPAWNED_PID ]] && return 0
    fi
    sleep 0.1
  done
  die "$name did not start (no pid file after 5 s); see $log"
}

# stop_processes TIMEOUT NAME...: send SIGTERM to every running NAME, wait up
# to TIMEOUT seconds for all of them to exit, then SIGKILL the rest. Names
# that are not running are skipped silently.
stop_processes() {
  local timeout=$1
  shift
  local -A pids=()
  local names=() name pid
  for name in "$@"; do
    if pid=$(running_pid "$name"); then
      say "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids[$name]=$pid
      names+=("$name")
    fi
  done
  ((${#names[@]} > 0)) || return 0

  local end=$((SECONDS + timeout)) alive
  while :; do
    alive=0
    for name in "${names[@]}"; do
      if proc_is "$name" "${pids[$name]}"; then alive=1; fi
    done
    ((alive)) || break
    ((SECONDS < end)) || break
    sleep 0.2
  done

  for name in "${names[@]}"; do
    pid=${pids[$name]}
    if proc_is "$name" "$pid"; then
      warn "$name (pid $pid) did not exit within ${timeout} s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in {1..50}; do
        proc_is "$name" "$pid" || break
        sleep 0.1
      done
    fi
    rm -f "$VAR_RUN/$name.pid"
    say "$name stopped"
  done
}

# ------------------------------------------------------ service instances
# deployment/up --instances N runs instance I (1..9) of a service as
# "<service>" for I = 1 and "<service>-I" otherwise, with HTTP port
# <service port> + 10 (I-1) (order: 8281, 8291, 8301, ...), data in
# var/data/<name>/, log var/log/<name>.log and pid file var/run/<name>.pid.
MAX_INSTANCES=9

# instance_role NAME: the service of an instance name ("order-2" -> order).
instance_role() { printf '%s\n' "${1%-[0-9]*}"; }

# instance_index NAME: its instance number ("order-2" -> 2, "order" -> 1).
instance_index() {
  if [[ $1 =~ -([0-9]+)$ ]]; then printf '%s\n' "${BASH_REMATCH[1]}"; else echo 1; fi
}

# instance_name SERVICE I
instance_name() { if (($2 == 1)); then printf '%s\n' "$1"; else printf '%s\n' "$1-$2"; fi; }

# instance_port NAME: the HTTP port of an instance.
instance_port() {
  local role index
  role=$(instance_role "$1")
  index=$(instance_index "$1")
  echo $((SERVICE_PORT[$role] + 10 * (index - 1)))
}

# running_instances: the name of every service instance that runs (by pid file).
running_instances() {
  local file name
  for file in "$VAR_RUN"/*.pid; do
    [[ -e $file ]] || continue
    name=$(basename "$file" .pid)
    [[ -n ${SERVICE_PORT[$(instance_role "$name")]:-} ]] || continue
    if running_pid "$name" >/dev/null; then printf '%s\n' "$name"; fi
  done
}
