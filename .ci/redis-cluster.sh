#!/usr/bin/env bash
# Starts a Redis Cluster of 3 masters and 3 replicas on six consecutive ports from FIRST_PORT
# (default 7101) unless it already answers, and waits until `cluster info` says cluster_state:ok.
# No persistence (--save "" --appendonly no); node files and logs go to DIR.
#   .ci/redis-cluster.sh [FIRST_PORT] [DIR]
set -euo pipefail
first=${1:-7101}
dir=${2:-${TMPDIR:-/tmp}/activity-log-redis-cluster-$first}
ports=$(seq "$first" $((first + 5)))

state() { redis-cli -p "$first" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p'; }

if [ "$(state)" = ok ]; then
  echo "redis-cluster: answers on $first-$((first + 5))"
  exit 0
fi

mkdir -p "$dir"
for port in $ports; do
  if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
    redis-server --cluster-enabled yes --port "$port" --bind 127.0.0.1 \
      --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000 \
      --save "" --appendonly no --daemonize yes --dir "$dir" --logfile "redis-$port.log"
  fi
done
for port in $ports; do
  for _ in $(seq 1 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
done

# Nodes that already know each other (a restart after a reboot of the processes) need no create.
if [ "$(redis-cli -p "$first" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')" -lt 6 ]; then
  nodes=""
  for port in $ports; do nodes="$nodes 127.0.0.1:$port"; done
  # shellcheck disable=SC2086
  redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dir/create.log"
fi

all_ok() {
  for port in $ports; do
    [ "$(redis-cli -p "$port" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p')" = ok ] || return 1
  done
}
for _ in $(seq 1 100); do
  if all_ok; then
    echo "redis-cluster: cluster_state:ok on $first-$((first + 5))"
    exit 0
  fi
  sleep 0.1
done
echo "redis-cluster: cluster on $first-$((first + 5)) did not reach cluster_state:ok (see $dir)" >&2
exit 1
