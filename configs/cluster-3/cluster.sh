#!/usr/bin/env bash
# Starts or stops the local three-node cluster (configs/cluster-3/node{1,2,3}.toml):
# processes in the background, logs, pids and data under ./run/.
#   cluster.sh start BIN_DIR   |   cluster.sh stop
set -euo pipefail
cd "$(dirname "$0")/../.."
TOKEN=local-demo-admin-token

start() {
	local bin=$1
	mkdir -p run
	if [ ! -f run/certs/ca.pem ]; then
		"$bin/castmesh" cert init --dir run/certs
		for i in 1 2 3; do "$bin/castmesh" cert issue --dir run/certs --node-id "$i"; done
	fi
	for i in 1 2 3; do
		if [ -f "run/node$i.pid" ] && kill -0 "$(cat "run/node$i.pid")" 2>/dev/null; then
			echo "node $i is already running (pid $(cat "run/node$i.pid"))"
			continue
		fi
		nohup "$bin/castmesh" --config "configs/cluster-3/node$i.toml" >"run/node$i.log" 2>&1 &
		echo $! >"run/node$i.pid"
	done
	local leader=""
	for _ in $(seq 1 100); do
		leader=$("$bin/castctl" --endpoint http://127.0.0.1:50051 --token "$TOKEN" --timeout 2s \
			-o json cluster status 2>/dev/null | sed -n 's/.*"leader_id": \([0-9]*\).*/\1/p' || true)
		[ -n "$leader" ] && break
		sleep 0.2
	done
	if [ -z "$leader" ]; then
		echo "the cluster did not elect a leader; see run/node*.log" >&2
		exit 1
	fi
	"$bin/castctl" --endpoint http://127.0.0.1:50051 --token "$TOKEN" cluster status
	cat <<MSG

Three nodes are running (logs: run/node{1,2,3}.log, data: run/node{1,2,3}/).
  export CASTCTL_TOKEN=$TOKEN CASTCTL_ENDPOINT=http://127.0.0.2:50051
  $bin/castctl stream create --id demo --title "Demo"       # prints the key once
  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine \\
    -c:v libx264 -g 60 -c:a aac -f flv rtmp://127.0.0.2:1935/live/KEY
  play: http://127.0.0.2:8080/hls/demo/index.m3u8  (the node you publish to)
Stop with: make cluster-stop
MSG
}

stop() {
	for i in 1 2 3; do
		if [ -f "run/node$i.pid" ]; then
			kill "$(cat "run/node$i.pid")" 2>/dev/null || true
			rm -f "run/node$i.pid"
		fi
	done
	echo "stopped (data kept in run/; remove it to start a fresh cluster)"
}

case "${1:-}" in
start) start "${2:?bin dir}" ;;
stop) stop ;;
*) echo "usage: $0 start BIN_DIR | stop" >&2; exit 2 ;;
esac
