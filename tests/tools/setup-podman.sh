#!/usr/bin/env bash
# Installs what the image and security tests need (tests/package/test_image.py,
# tests/system/test_security.py), each part only when it is missing; non-interactive and
# idempotent:
#   1. Debian packages: podman buildah runc catatonit debootstrap libcap2-bin shellcheck curl
#      qemu-user-static (the arm64 image's binary runs under qemu-aarch64-static, called
#      directly: no binfmt_misc registration needed), and nodejs npm when there is no npm.
#   2. /etc/containers/containers.conf: [engine] runtime = "runc" (crun fails on this machine's
#      hybrid cgroups) and [containers] default_ulimits; every other setting is kept.
#   3. The base image docker.io/library/debian:bookworm-slim, made offline (base-image.sh).
#   4. dockerlinter 2.0.0 in tests/tools/.cache/dockerlinter, as dockerlinter/package-lock.json pins
#      it, with --ignore-scripts: its postinstall downloads a shellcheck; Debian's is used instead.
# Rootful podman: run as root (apt-get and the containers.conf edit use sudo otherwise).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache="$here/.cache"
packages=(podman buildah runc catatonit debootstrap libcap2-bin shellcheck curl qemu-user-static)
conf=/etc/containers/containers.conf

say() { printf 'setup-podman: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

install_packages() {
	local missing=() p
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	command -v npm >/dev/null || missing+=(nodejs npm)
	if [ ${#missing[@]} = 0 ]; then
		say "Debian packages present: ${packages[*]}"
		return
	fi
	say "apt-get install ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Sets KEY = VALUE in [SECTION] of a TOML file, line by line so that comments and every other
# setting stay as they are: replaces the key (a multi-line array included), or adds it under the
# section header, or appends the section. Prints what it changed; writes nothing when all is set.
configure_containers() {
	$sudo mkdir -p "$(dirname "$conf")"
	$sudo python3 - "$conf" <<'EOF'
import os, re, sys

path = sys.argv[1]
wanted = [
    ("engine", "runtime", '"runc"'),
    ("containers", "default_ulimits", '["nofile=20000:20000", "nproc=32768:32768"]'),
]
try:
    with open(path) as f:
        lines = f.read().splitlines()
except FileNotFoundError:
    lines = []
header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")


def set_key(lines, section, key, value):
    setting = f"{key} = {value}"
    current, head = None, None
    for i, line in enumerate(lines):
        m = header.match(line)
        if m:
            current = m.group(1)
            if current == section and head is None:
                head = i
            continue
        if current != section or not re.match(rf"^\s*{re.escape(key)}\s*=", line):
            continue
        end = i  # a multi-line array runs to its closing bracket
        if line.split("=", 1)[1].strip().startswith("[") and "]" not in line:
            while end + 1 < len(lines) and "]" not in lines[end]:
                end += 1
        if lines[i:end + 1] == [setting]:
            return False
        lines[i:end + 1] = [setting]
        return True
    if head is None:
        lines += ([""] if lines and lines[-1].strip() else []) + [f"[{section}]", setting]
    else:
        lines.insert(head + 1, setting)
    return True


changed = [f"[{s}] {k} = {v}" for s, k, v in wanted if set_key(lines, s, k, v)]
if changed:
    tmp = path + ".sigreload-tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    if os.path.exists(path):
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)
    for c in changed:
        print(f"setup-podman: {path}: set {c}")
else:
    print(f"setup-podman: {path}: runtime and default_ulimits already set")
EOF
}

install_dockerlinter() {
	local dir="$cache/dockerlinter" stamp want
	stamp="$dir/node_modules/.sigreload-lock.sha256"
	want=$(sha256sum "$here/dockerlinter/package-lock.json" | cut -d' ' -f1)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/node_modules/.bin/dockerlinter" ]; then
		say "dockerlinter already in $dir (lock $want)"
		return
	fi
	say "npm ci --ignore-scripts in $dir: dockerlinter 2.0.0 (shellcheck from Debian)"
	mkdir -p "$dir"
	cp "$here/dockerlinter/package.json" "$here/dockerlinter/package-lock.json" "$dir/"
	npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error
	echo "$want" >"$stamp"
}

install_packages
for tool in podman buildah runc catatonit debootstrap setcap getcap shellcheck npm python3 qemu-aarch64-static; do
	command -v "$tool" >/dev/null || die "$tool is still missing after apt-get install"
done
configure_containers
$sudo bash "$here/base-image.sh"
install_dockerlinter
say "done"
