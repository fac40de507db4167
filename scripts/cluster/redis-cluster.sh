#!/usr/bin/env bash
# A private three-master Redis Cluster on loopback for the tests, isolated
# from the system Redis (6379).
#
#   redis-cluster.sh up DIR          start masters on 7001-7003, create the cluster,
#                                    wait until every node reports cluster_state:ok,
#                                    print REDIS_URL in go-redis's cluster form
#   redis-cluster.sh down DIR        stop every node under DIR by its PID, remove DIR
#   redis-cluster.sh pid DIR PORT    the PID of the node on PORT
#
# REDIS_CLUSTER_PORTS overrides the ports ("7001 7002 7003"); each node also
# uses PORT+10000 for the cluster bus. Every node keeps its nodes.conf, log
# and PID file in DIR/PORT and nothing else: no RDB, no AOF. No replicas:
# the tests need keys spread over three masters, not node failover.
set -euo pipefail

usage() { sed -n '2,14p' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
cmd=$1 T=$2
shift 2
read -r -a ports <<<"${REDIS_CLUSTER_PORTS:-7001 7002 7003}"

pid_of() { cat "$T/$1/redis.pid" 2>/dev/null; }

# wait_for TRIES DESCRIPTION COMMAND...: run COMMAND every 0.1 s until it
# succeeds, at most TRIES times.
wait_for() {
  local tries=$1 what=$2
  shift 2
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-cluster.sh: timed out waiting for $what" >&2
  return 1
}

answers() { redis-cli -p "$1" ping | grep -q PONG; }
cluster_ok() { redis-cli -p "$1" cluster info | grep -q 'cluster_state:ok'; }

# ours PID: a live (not zombie) redis process; a stale PID file may name
# a process that took the number over.
ours() {
  local s
  s=$(ps -o stat=,comm= -p "$1" 2>/dev/null) || return 1
  [ "${s:0:1}" != Z ] && [[ $s == *redis* ]]
}

# stop_all stops what the PID files under DIR name: TERM, then KILL after
# 2 s (Redis 7 would wait up to 10 s for lagging replicas; nothing here is
# worth saving). The servers remove their PID files themselves on exit.
stop_all() {
  local f p pids=()
  for f in "$T"/*/redis.pid; do
    p=$(cat "$f" 2>/dev/null) && ours "$p" && pids+=("$p")
  done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 20); do ours "$p" || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -f "$T"/*/redis.pid
}

case $cmd in
up)
  for p in "${ports[@]}"; do
    if answers "$p" 2>/dev/null; then
      echo "redis-cluster.sh: something already answers on port $p; stop it or set REDIS_CLUSTER_PORTS" >&2
      exit 1
    fi
  done
  mkdir -p "$T"
  # A failed start leaves no node behind.
  trap 'stop_all' ERR
  addrs=()
  for p in "${ports[@]}"; do
    mkdir -p "$T/$p"
    redis-server --port "$p" --bind 127.0.0.1 --dir "$T/$p" \
      --cluster-enabled yes --cluster-config-file "$T/$p/nodes.conf" --cluster-node-timeout 2000 \
      --save "" --appendonly no --daemonize yes \
      --pidfile "$T/$p/redis.pid" --logfile "$T/$p/redis.log"
    addrs+=("127.0.0.1:$p")
  done
  for p in "${ports[@]}"; do wait_for 100 "the node on port $p to answer" answers "$p"; done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$T/create.log" 2>&1 || {
    echo "redis-cluster.sh: cluster create failed:" >&2
    tail -n 20 "$T/create.log" >&2
    false
  }
  # Every node must agree, not only the first: a client may ask any of them.
  for p in "${ports[@]}"; do wait_for 150 "cluster_state:ok on port $p" cluster_ok "$p"; done
  trap - ERR
  url="redis://${addrs[0]}"
  sep='?'
  for a in "${addrs[@]:1}"; do
    url+="${sep}addr=$a"
    sep='&'
  done
  echo "REDIS_URL=$url"
  ;;
down)
  [ -d "$T" ] || exit 0
  stop_all
  rm -rf "$T"
  ;;
pid) pid_of "${1:?port}" ;;
*) usage ;;
esac
