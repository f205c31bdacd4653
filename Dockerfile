# sigreload's image: one static binary FROM scratch, non-root, no shell.
#
#   podman build --pull=never -t sigreload .      (or docker build; tests/system/test_image.py)
#
# The base is `debian:bookworm-slim` by tag: the release that the build machines and CI run, so
# the packages and the libmicrohttpd source match what the tests link against. A digest or a
# dated tag cannot be resolved on the offline build machines (tests/tools/base-image.sh makes the
# image there with debootstrap); where a registry is reachable, pin the digest for reproducible
# release builds: `FROM debian:bookworm-slim@sha256:...`.

# ---- build: a static binary (glibc, libcrypto, libyaml, libseccomp, libmicrohttpd) -----------
FROM debian:bookworm-slim AS build

WORKDIR /usr/src
# libmicrohttpd from Debian's own source, without HTTPS: Debian's static libmicrohttpd.a needs
# GnuTLS, of which Debian ships no static archive, and sigreload serves plain-HTTP /metrics only.
# A layer of its own, independent of sigreload's source, so that it stays cached.
# Packages are not pinned to versions: bookworm's are fixed but for security updates, wanted here.
# linter ignore=ER0012
RUN printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm' \
        'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
        > /etc/apt/sources.list.d/debian-src.sources \
    && apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make pkg-config dpkg-dev \
        libyaml-dev libssl-dev libseccomp-dev libcap2-bin \
    && apt-get source libmicrohttpd \
    && env -C libmicrohttpd-*/ ./configure --prefix=/opt/mhd --disable-https --enable-static \
        --disable-shared --disable-doc --disable-examples --disable-curl --disable-dauth --disable-postprocessor \
    && make -C libmicrohttpd-*/ -j"$(nproc)" install \
    && rm -rf /usr/src/* /var/lib/apt/lists/*

WORKDIR /usr/src/sigreload
COPY Makefile ./
COPY src/ src/

# VERSION must be the Makefile's: the build stops here when the label would lie.
ARG VERSION=0.1.0
# cap_kill+p, permitted only: sigreload raises CAP_KILL to effective itself when the container's
# bounding set holds it (capabilities.add: [KILL]). With +ep, execve would fail with EPERM in a
# container that drops ALL, and the same-uid mode would not start (docs/SECURITY-MODES.md).
RUN PKG_CONFIG_PATH=/opt/mhd/lib/pkgconfig make static \
    && strip build/static/sigreload \
    && test "$(build/static/sigreload --version)" = "sigreload ${VERSION}" \
    && install -D -m 0755 build/static/sigreload /out/sigreload \
    && setcap cap_kill+p /out/sigreload \
    && getcap /out/sigreload

# ---- the image: the binary alone ------------------------------------------------------------
FROM scratch

ARG VERSION=0.1.0
ARG SOURCE=https://github.com/sigreload/sigreload
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="sigreload" \
      org.opencontainers.image.description="Config-watch hot-reload sidecar: signals the app's processes when the content of its ConfigMap or Secret files changes (pods with shareProcessNamespace: true)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}"

# buildah's COPY --from keeps the security.capability xattr (tests/system/test_image.py checks
# it with getcap). Some other builders have dropped file capabilities in COPY
# (moby/buildkit#2250): check `getcap` on the binary of an image built any other way.
COPY --from=build /out/sigreload /usr/local/bin/sigreload

ENV PATH=/usr/local/bin
# 65532: the usual "nonroot" uid of distroless images, the chart's default runAsUser.
USER 65532:65532
# Rule file: /etc/sigreload/sigreload.yaml (the chart mounts it), or -c FILE / $SIGRELOAD_CONFIG.
ENTRYPOINT ["/usr/local/bin/sigreload"]
CMD ["run"]
