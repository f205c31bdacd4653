#!/usr/bin/env bash
# A live demo of sigreload's main job: a "pod" (a PID namespace) runs real nginx and sigreload
# side by side; the kubelet's atomic ConfigMap update is replayed twice; sigreload's log shows
# each decision and nginx serves the new page. Needs root (namespaces), nginx and python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
demo=/tmp/sigreload-demo # the path config/demo/sigreload.yaml watches
port=18080
pod=

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
cleanup() {
	# unshare --kill-child: killing it ends the pod's PID 1, and with it every process inside
	if [ -n "$pod" ]; then
		kill -KILL "$pod" 2>/dev/null || true
		wait "$pod" 2>/dev/null || true
	fi
	rm -rf "$demo"
}
trap cleanup EXIT

site() { printf 'server { listen 127.0.0.1:%s; location / { return 200 "%s\\n"; } }\n' "$port" "$1" >"$demo/site.conf"; }
kubelet() { python3 "$root/tests/system/kubelet.py" "$@" "$demo/conf.d" "default.conf=@$demo/site.conf" >&2; }
page() {
	for _ in $(seq 100); do
		body=$(curl -fsS "http://127.0.0.1:$port/" 2>/dev/null || true)
		[ "$body" = "$1" ] && { echo "curl http://127.0.0.1:$port/ -> $body" >&2; return 0; }
		sleep 0.1
	done
	echo "nginx never served '$1'" >&2
	return 1
}

rm -rf "$demo"
mkdir -p "$demo/conf.d"
cat >"$demo/nginx.conf" <<CONF
daemon off; worker_processes 2; pid $demo/nginx.pid; error_log stderr notice;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $demo/tmp; include $demo/conf.d/*.conf; }
CONF
site "hello from version 1"
kubelet

step "a pod with shareProcessNamespace: nginx and sigreload in one PID namespace"
unshare --pid --fork --mount-proc --kill-child bash -c '
	nginx -c "$1/nginx.conf" -p "$1" &
	"$2/sigreload" run -c "$2/config/demo/sigreload.yaml" &
	wait' demo "$demo" "$root" &
pod=$!
page "hello from version 1"
sleep 1

step "the kubelet updates the ConfigMap: new ..data, one signal to nginx's master"
site "hello from version 2"
kubelet
page "hello from version 2"
sleep 1.5

step "touch, then an atomic swap to identical content: the content decides, nothing is sent"
touch "$demo/conf.d/default.conf"
sleep 0.5
kubelet --force
sleep 1

step "done: one update, one SIGHUP to nginx's master, none to its workers"
