#!/usr/bin/env bash
# Puts docker.io/library/debian:bookworm-slim into (rootful) podman's store without a registry:
# `debootstrap --variant=minbase bookworm` from the Debian archive, trimmed like the real slim
# image, then `podman import`. The Dockerfile's `FROM debian:bookworm-slim` and the image test's
# nginx image build on it with --pull=never. Does nothing when the image is there already;
# FORCE=1 rebuilds it. Needs root, debootstrap and podman (tests/tools/setup-podman.sh).
#
# Not the registry's image, byte for byte: the same release and the same essential packages, no
# digest to pin. The Debian archive is the one this machine's apt uses (apt_mirror.py beside
# this script), and the image's own apt sources name it too; DEBIAN_MIRROR (and
# DEBIAN_SECURITY_MIRROR) override it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=docker.io/library/debian:bookworm-slim

say() { printf 'base-image: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: the tests use rootful podman"
for tool in debootstrap podman tar; do
	command -v "$tool" >/dev/null || die "$tool is missing: run 'make deps' (tests/tools/setup-podman.sh)"
done

if [ "${FORCE:-0}" != 1 ] && podman image exists "$image"; then
	say "$image already in podman's store"
	exit 0
fi

if [ -n "${DEBIAN_MIRROR:-}" ]; then
	mirror=$DEBIAN_MIRROR security=${DEBIAN_SECURITY_MIRROR:-}
else
	found=$(python3 "$here/apt_mirror.py") || die "no Debian mirror to bootstrap from (above)"
	mirror=$(sed -n 's/^DEBIAN_MIRROR=//p' <<<"$found")
	security=$(sed -n 's/^DEBIAN_SECURITY_MIRROR=//p' <<<"$found")
fi

tmp=$(mktemp -d /var/tmp/sigreload-base.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"

say "debootstrap --variant=minbase bookworm from $mirror (about half a minute)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
	{ tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# What the real slim image does: apt sources in deb822 form (with updates and security), no
# documentation or man pages installed by later apt-get runs, no package cache kept.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
if [ -n "$security" ]; then
	cat >>"$root/etc/apt/sources.list.d/debian.sources" <<EOF

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
	"$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/var/log/apt/*

say "podman import $image"
tar --numeric-owner --xattrs -C "$root" -c . |
	podman import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' \
		--message "debootstrap --variant=minbase bookworm $mirror (tests/tools/base-image.sh)" \
		- "$image" >/dev/null
say "created $image ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
