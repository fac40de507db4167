#!/usr/bin/env bash
# A private Redis Sentinel group on loopback for the tests, isolated from the
# system Redis (6379): a master on 6391, its replica on 6392, and three
# Sentinels on 26391-26393 watching them under the master name bbmaster.
#
#   redis-sentinel.sh up DIR          start them, wait until the replica is in sync
#                                     and every Sentinel reports slaves=1,sentinels=3,
#                                     print REDIS_URL in go-redis's Sentinel form
#   redis-sentinel.sh down DIR        stop every process under DIR by its PID, remove DIR
#   redis-sentinel.sh pid DIR PORT    the PID of the server (or Sentinel) on PORT
#   redis-sentinel.sh master DIR      the port of the master, as the first Sentinel
#                                     that answers reports it
#
# SENTINEL_DOWN_AFTER_MS (default 1000) is how long the master may be silent
# before a Sentinel deems it down: a failover then takes about 2.5 s (1.3 s
# at 500). Nothing is persisted (no RDB, no AOF); each Sentinel rewrites its
# own config file in DIR, as Sentinel requires.
set -euo pipefail

usage() { sed -n '2,17p' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
cmd=$1 T=$2
shift 2

readonly MASTER=6391 REPLICA=6392 NAME=bbmaster
readonly SENTINELS=(26391 26392 26393)
down_after=${SENTINEL_DOWN_AFTER_MS:-1000}

# shellcheck source=redis-lib.sh
source "$(dirname "$0")/redis-lib.sh"

in_sync() { redis-cli -p $REPLICA info replication | grep -q 'master_link_status:up'; }
sees_all() { redis-cli -p "$1" info sentinel | grep -q "slaves=1,sentinels=${#SENTINELS[@]}"; }

stop_all() { stop_pidfiles "$T"/*.pid; }

case $cmd in
up)
  for p in $MASTER $REPLICA "${SENTINELS[@]}"; do
    if answers "$p" 2>/dev/null; then
      echo "redis-sentinel.sh: something already answers on port $p; stop it first" >&2
      exit 1
    fi
  done
  mkdir -p "$T"
  trap 'stop_all' ERR
  common=(--bind 127.0.0.1 --save "" --appendonly no --daemonize yes --dir "$T"
    --repl-diskless-sync yes --repl-diskless-sync-delay 0 --repl-diskless-load on-empty-db)
  redis-server --port $MASTER --pidfile "$T/$MASTER.pid" --logfile "$T/$MASTER.log" "${common[@]}"
  redis-server --port $REPLICA --pidfile "$T/$REPLICA.pid" --logfile "$T/$REPLICA.log" \
    --replicaof 127.0.0.1 $MASTER "${common[@]}"
  for i in "${!SENTINELS[@]}"; do
    sp=${SENTINELS[$i]}
    cat >"$T/sentinel$sp.conf" <<CONF
port $sp
bind 127.0.0.1
daemonize yes
pidfile $T/$sp.pid
logfile $T/sentinel$sp.log
dir $T
sentinel monitor $NAME 127.0.0.1 $MASTER 2
sentinel down-after-milliseconds $NAME $down_after
sentinel failover-timeout $NAME 10000
sentinel parallel-syncs $NAME 1
CONF
    redis-server "$T/sentinel$sp.conf" --sentinel
  done
  wait_for 150 "the replica on $REPLICA to sync with $MASTER" in_sync
  # Only a Sentinel that knows the replica and its peers can fail over.
  for sp in "${SENTINELS[@]}"; do wait_for 300 "Sentinel $sp to see the replica and both peers" sees_all "$sp"; done
  trap - ERR
  echo "REDIS_URL=redis://127.0.0.1:${SENTINELS[0]}?addr=127.0.0.1:${SENTINELS[1]}&addr=127.0.0.1:${SENTINELS[2]}&master_name=$NAME"
  ;;
down)
  [ -d "$T" ] || exit 0
  stop_all
  rm -rf "$T"
  ;;
pid) cat "$T/${1:?port}.pid" ;;
master)
  for sp in "${SENTINELS[@]}"; do
    if addr=$(redis-cli -p "$sp" sentinel get-master-addr-by-name $NAME 2>/dev/null) && [ -n "$addr" ]; then
      echo "$addr" | tail -n 1
      exit 0
    fi
  done
  echo "redis-sentinel.sh: no Sentinel answers" >&2
  exit 1
  ;;
*) usage ;;
esac
