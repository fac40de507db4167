# Shared by redis-cluster.sh and redis-sentinel.sh (sourced, not run).

# wait_for TRIES DESCRIPTION COMMAND...: run COMMAND every 0.1 s until it
# succeeds, at most TRIES times.
wait_for() {
  local tries=$1 what=$2
  shift 2
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "${0##*/}: timed out waiting for $what" >&2
  return 1
}

answers() { redis-cli -p "$1" ping | grep -q PONG; }

# ours PID: a live (not zombie) redis process; a stale PID file may name
# a process that took the number over.
ours() {
  local s
  s=$(ps -o stat=,comm= -p "$1" 2>/dev/null) || return 1
  [ "${s:0:1}" != Z ] && [[ $s == *redis* ]]
}

# stop_pidfiles PIDFILE...: stop what the PID files name: TERM, then KILL
# after 2 s (Redis 7 would wait up to 10 s for lagging replicas; nothing
# here is worth saving), then remove the files.
stop_pidfiles() {
  local f p pids=()
  for f in "$@"; do
    p=$(cat "$f" 2>/dev/null) && ours "$p" && pids+=("$p")
  done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 20); do ours "$p" || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -f "$@"
}
