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

# shellcheck source=redis-lib.sh
source "$(dirname "$0")/redis-lib.sh"

cluster_ok() { redis-cli -p "$1" cluster info | grep -q 'cluster_state:ok'; }

stop_all() { stop_pidfiles "$T"/*/redis.pid; }

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
