#!/usr/bin/env bash
# Private RabbitMQ nodes on loopback for the disruptive tests and the cluster
# benchmark, isolated from the system node (rabbit@localhost, 5672/25672).
#
#   rabbitmq.sh up DIR [N...]     start nodes bbqN@localhost (default 1 2 3) and
#                                 join them into one cluster with the first
#   rabbitmq.sh down DIR          kill every node under DIR by its PID, remove DIR
#   rabbitmq.sh status DIR        cluster status, as the first node sees it
#   rabbitmq.sh stop DIR N        stop node N gracefully (its data stays)
#   rabbitmq.sh start DIR N       start node N again on its data, wait for it
#   rabbitmq.sh pid DIR N         the beam PID of node N (kill -KILL it to lose the node)
#   rabbitmq.sh leader DIR QUEUE  the node leading a quorum queue (bbqN@localhost)
#
# Node N listens for AMQP on 127.0.0.1:(5680+N) (guest/guest, from loopback)
# and for distribution on 25680+N. Everything lives in DIR: a private Erlang
# cookie under DIR/home (the CLI reads it through HOME, never the system's),
# an env file that shadows /etc/rabbitmq/rabbitmq-env.conf (it names the
# system node), and per node mnesia, logs and config. The /usr/sbin wrappers
# would switch to the rabbitmq user and its cookie, so the scripts in
# /usr/lib/rabbitmq/bin are called directly. Nothing here ever addresses the
# system node: every CLI call names its bbqN node.
set -euo pipefail

RMQ_BIN=${RMQ_BIN:-/usr/lib/rabbitmq/bin}

usage() { sed -n '2,12p' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
cmd=$1 T=$2
shift 2

node_env() { # $1 = node number
  local i=$1
  echo HOME="$T/home" \
    RABBITMQ_CONF_ENV_FILE="$T/rabbitmq-env.conf" \
    RABBITMQ_NODENAME="bbq$i@localhost" RABBITMQ_USE_LONGNAME=false \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$((5680 + i)) \
    RABBITMQ_DIST_PORT=$((25680 + i)) ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_MNESIA_BASE="$T/n$i/mnesia" RABBITMQ_LOG_BASE="$T/n$i/log" \
    RABBITMQ_CONFIG_FILE="$T/n$i/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$T/n$i/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$T/enabled_plugins"
}

ctl() { # $1 = node number, then rabbitmqctl arguments
  local i=$1
  shift
  env HOME="$T/home" RABBITMQ_CONF_ENV_FILE="$T/rabbitmq-env.conf" ERL_EPMD_ADDRESS=127.0.0.1 \
    "$RMQ_BIN/rabbitmqctl" -q -n "bbq$i@localhost" "$@"
}

pidfile() { echo "$T/n$1/mnesia/bbq$1@localhost.pid"; }

nodes_of() { # the node numbers that have a directory under $T
  local d
  for d in "$T"/n*; do [ -d "$d" ] && echo "${d##*/n}"; done
}

start_node() { # $1 = node number; returns once the node runs
  local i=$1
  mkdir -p "$T/n$i/mnesia" "$T/n$i/log"
  rm -f "$(pidfile "$i")" # left by a node that was killed: wait would read a dead PID
  [ -f "$T/n$i/rabbitmq.conf" ] || cat >"$T/n$i/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$((5680 + i))
loopback_users = none
log.console = false
log.file.level = warning
CONF
  # setsid: the node must not die with the shell (or test) that started it.
  # shellcheck disable=SC2046
  env $(node_env "$i") RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    setsid "$RMQ_BIN/rabbitmq-server" >>"$T/n$i/stdout.log" 2>&1 </dev/null &
  echo $! >"$T/n$i/wrapper.pid"
}

wait_node() { # $1 = node number. await_startup fails at once on a node not up yet; wait reads the pid file.
  local i=$1
  if ! ctl "$i" wait --timeout 120 "$(pidfile "$i")" >/dev/null; then
    echo "rabbitmq.sh: node bbq$i did not start; its log:" >&2
    tail -n 30 "$T/n$i/stdout.log" >&2 || true
    return 1
  fi
}

stop_node() { # $1 = node number: graceful shutdown, SIGKILL when it hangs
  local i=$1 p w
  p=$(cat "$(pidfile "$i")" 2>/dev/null) || true
  if [ -n "${p:-}" ] && kill -0 "$p" 2>/dev/null; then
    timeout 60 bash -c "$(declare -f ctl); T='$T' RMQ_BIN='$RMQ_BIN'; ctl $i shutdown --timeout 30" >/dev/null 2>&1 || kill -KILL "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  w=$(cat "$T/n$i/wrapper.pid" 2>/dev/null) || true
  if [ -n "${w:-}" ] && kill -0 "$w" 2>/dev/null; then kill -TERM "$w" 2>/dev/null || true; fi
  rm -f "$(pidfile "$i")"
}

case $cmd in
up)
  [ $# -gt 0 ] || set -- 1 2 3
  mkdir -p "$T/home"
  if [ ! -f "$T/home/.erlang.cookie" ]; then
    printf 'BBQCOOKIE%s' "$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')" >"$T/home/.erlang.cookie"
    chmod 400 "$T/home/.erlang.cookie"
  fi
  # Shadows /etc/rabbitmq/rabbitmq-env.conf; the CLI's own distribution binds loopback too.
  echo 'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"' >"$T/rabbitmq-env.conf"
  echo '[].' >"$T/enabled_plugins" # no plugins: no management port to collide with the system node's
  for i in "$@"; do start_node "$i"; done
  pids=()
  for i in "$@"; do wait_node "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
  first=$1
  shift
  for i in "$@"; do
    ctl "$i" stop_app
    ctl "$i" join_cluster "bbq$first@localhost"
    ctl "$i" start_app
  done
  if [ $# -gt 0 ]; then ctl "$first" await_online_nodes $(($# + 1)) --timeout 60; fi
  ;;
down)
  # Throwaway nodes: SIGKILL, all at once, is quicker than a shutdown each.
  for i in $(nodes_of); do
    for f in "$(pidfile "$i")" "$T/n$i/wrapper.pid"; do
      p=$(cat "$f" 2>/dev/null) || continue
      kill -KILL "$p" 2>/dev/null || true
    done
  done
  for i in $(nodes_of); do
    p=$(cat "$(pidfile "$i")" 2>/dev/null) || continue
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$T"
  ;;
status) ctl "$(nodes_of | head -n 1)" cluster_status ;;
stop) stop_node "${1:?node number}" ;;
start)
  start_node "${1:?node number}"
  wait_node "$1"
  ;;
pid) cat "$(pidfile "${1:?node number}")" ;;
leader)
  q=${1:?queue name}
  for i in $(nodes_of); do
    p=$(cat "$(pidfile "$i")" 2>/dev/null) || continue
    kill -0 "$p" 2>/dev/null || continue
    # Columns are tab-separated: name, then leader.
    ctl "$i" list_queues name leader --no-table-headers | awk -F'\t' -v q="$q" '$1 == q { print $2; found = 1 } END { exit !found }' && exit 0
  done
  echo "rabbitmq.sh: no running node knows queue $q" >&2
  exit 1
  ;;
*) usage ;;
esac
