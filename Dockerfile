# sigreload's image: one static binary FROM scratch, non-root, no shell, for amd64 and arm64.
#
#   make image                                    (reads the machine's Debian mirror; see below)
#   make image-multiarch                          (an amd64 + arm64 manifest list)
#   podman build --pull=never --platform linux/arm64 -t sigreload:arm64 .
#
# The build stages always run on the build machine's own architecture (FROM --platform=
# $BUILDPLATFORM) and cross-compile for TARGETARCH with Debian's cross gcc and the target's -dev
# packages through multiarch: an arm64 image is built on amd64 without emulating anything.
#
# Debian mirror: DEBIAN_MIRROR (and DEBIAN_SECURITY_MIRROR) replace the base image's apt sources;
# `make image` reads them from the build machine's own apt sources (tests/tools/apt_mirror.py),
# so builds work wherever that machine's apt works. Without them the base image's own sources
# are used. This file names no host.
#
# The base is `debian:bookworm-slim` by tag: the release that the build machines and CI run, so
# the packages and the library sources match what the tests link against. A digest or a dated
# tag cannot be resolved on the offline build machines (tests/tools/base-image.sh makes the
# image there with debootstrap); where a registry is reachable, pin the digest for reproducible
# release builds: `FROM debian:bookworm-slim@sha256:...`.
#
# Licences: NOTICE lists what is linked into the binary and how to rebuild it with a modified
# library (the LGPL's relinking right): edit the library's source in the `deps` stage below.

# ---- toolchain: build-machine tools, musl for the target, the libraries' sources -------------
# podman 4.3 (buildah 1.28, Debian 12's) does not set BUILDPLATFORM: then the build machine is
# taken to be amd64 (`make image` passes the real one); newer podman and docker buildx set it.
FROM --platform=${BUILDPLATFORM:-linux/amd64} debian:bookworm-slim AS toolchain
ARG TARGETARCH
ARG DEBIAN_MIRROR
ARG DEBIAN_SECURITY_MIRROR
WORKDIR /usr/src
# The apt sources gain deb-src entries: every library is built from Debian's own source package
# below. Packages are not pinned to versions: bookworm's are fixed but for security updates,
# wanted here. `$musl-gcc` (x86_64-linux-musl-gcc, aarch64-linux-musl-gcc) is the target's gcc
# with musl's specs and the kernel's headers; on arm64 without outline atomics, whose libgcc
# helpers ask glibc's __getauxval for the CPU's features. $musl-ar and the others are binutils'.
# linter ignore=ER0012
RUN set -e; \
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg; \
    if [ -n "$DEBIAN_MIRROR" ]; then \
        rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*; \
        printf 'Types: deb deb-src\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: %s\n' \
            "$DEBIAN_MIRROR" "$keyring" > /etc/apt/sources.list.d/debian.sources; \
        if [ -n "$DEBIAN_SECURITY_MIRROR" ]; then \
            printf '\nTypes: deb deb-src\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: %s\n' \
                "$DEBIAN_SECURITY_MIRROR" "$keyring" >> /etc/apt/sources.list.d/debian.sources; \
        fi; \
    elif grep -qs '^Types: deb$' /etc/apt/sources.list.d/*.sources; then \
        sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/*.sources; \
    elif grep -qs '^deb ' /etc/apt/sources.list; then \
        sed -i 'p; s/^deb /deb-src /' /etc/apt/sources.list; \
    else \
        echo "error: no Debian mirror: the base image has no package sources and DEBIAN_MIRROR" \
            "is not set; pass --build-arg DEBIAN_MIRROR=URL (make image reads it from the build" \
            "machine's own sources)" >&2; \
        exit 1; \
    fi; \
    arch=$TARGETARCH; \
    case "$arch" in \
        amd64) triplet=x86_64-linux-gnu; musl=x86_64-linux-musl; cc=gcc-x86-64-linux-gnu; flags= ;; \
        arm64) triplet=aarch64-linux-gnu; musl=aarch64-linux-musl; cc=gcc-aarch64-linux-gnu; \
            flags=-mno-outline-atomics ;; \
        *) echo "error: TARGETARCH '$arch' is not built here: amd64 or arm64" >&2; exit 1 ;; \
    esac; \
    if [ "$arch" = "$(dpkg --print-architecture)" ]; then \
        cc=gcc; \
    else \
        dpkg --add-architecture "$arch"; \
    fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends "$cc" "musl-dev:$arch" "linux-libc-dev:$arch" \
        make pkg-config dpkg-dev autoconf automake libtool gperf libcap2-bin; \
    apt-get source --download-only libyaml libseccomp c-ares libmicrohttpd curl; \
    if ! apt-get source --download-only openssl; then \
        echo "warning: no source of the newest openssl on this mirror: building bookworm's" >&2; \
        rm -f openssl_*; \
        apt-get source --download-only openssl/bookworm; \
    fi; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /usr/local/include/kernel; \
    ln -s /usr/include/linux /usr/include/asm-generic "/usr/include/$triplet/asm" \
        /usr/local/include/kernel/; \
    printf '#!/bin/sh\nexec %s-gcc "$@" -specs /usr/lib/%s/musl-gcc.specs -isystem %s %s\n' \
        "$triplet" "$musl" /usr/local/include/kernel "$flags" > "/usr/local/bin/$musl-gcc"; \
    chmod 0755 "/usr/local/bin/$musl-gcc"; \
    for tool in ar nm ranlib strip; do \
        ln -s "/usr/bin/$triplet-$tool" "/usr/local/bin/$musl-$tool"; \
    done; \
    echo "$musl" > /etc/sigreload-target

# ---- deps: every library sigreload links, static, against musl, for the target ------------
# Each from Debian's source package (its patches applied by dpkg-source), configured for the
# target with the C library musl: `$musl-gcc` is the target's gcc with musl's specs file (the
# `musl-gcc` that Debian's musl-dev ships, with the kernel's headers beside musl's). Why musl and
# not glibc: a static glibc brings its dynamic loader, NSS and iconv with it (regcomp and c-ares
# reach them), about 1 MB; musl's share is a tenth of that (README.md, "The image").
# PKG_CONFIG_LIBDIR makes pkg-config see the libraries built here and nothing else.
FROM toolchain AS deps
ENV PKG_CONFIG_LIBDIR=/opt/deps/lib/pkgconfig
# libmicrohttpd without HTTPS: Debian's static libmicrohttpd.a needs GnuTLS, of which Debian
# ships no static archive, and sigreload serves plain-HTTP /metrics only.
RUN musl=$(cat /etc/sigreload-target) \
    && dpkg-source -x libmicrohttpd_*.dsc mhd \
    && env -C mhd ./configure --host="$musl" --build="$(dpkg-architecture -qDEB_BUILD_GNU_TYPE)" \
        --prefix=/opt/deps --enable-static --disable-shared --disable-https --disable-doc \
        --disable-examples --disable-curl --disable-dauth --disable-postprocessor \
        CFLAGS="-Os -ffunction-sections -fdata-sections" \
    && make -C mhd -j"$(nproc)" install \
    && install -D -m 0644 mhd/debian/copyright /opt/deps/share/doc/libmicrohttpd.copyright \
    && dpkg-parsechangelog -l mhd/debian/changelog -S Version > /opt/deps/share/doc/libmicrohttpd.version \
    && rm -rf mhd

# OpenSSL for SHA-256 (sigreload) and libcurl's HTTPS only: TLS 1.2 and 1.3, RSA and ECDSA
# certificates in PEM files, ECDHE (X25519, the NIST P curves), AES-GCM and ChaCha20-Poly1305.
# Left out: the older and datagram protocols, DH, DSA, PSK, SRP, the legacy ciphers and digests
# and the legacy provider, engines and loadable modules (the image has no file to load, and no
# openssl.cnf), OCSP, CT, CMS, CMP and TS, threads (sigreload runs one), and the socket BIOs
# (libcurl gives OpenSSL a BIO of its own; they called the C library's getaddrinfo). Every
# function in a section of its own, so that the static link keeps what is called; -Os, and the
# smaller variants of OpenSSL's C code (OPENSSL_SMALL_FOOTPRINT). The assembly stays (AES-NI,
# the SHA extensions, constant-time AES) but for P-256's, mostly a large table of precomputed
# points: the portable code does P-256 instead. What weighs what: README.md, "The image".
RUN musl=$(cat /etc/sigreload-target) \
    && case "$musl" in x86_64-*) target=linux-x86_64 ;; aarch64-*) target=linux-aarch64 ;; esac \
    && dpkg-source -x openssl_*.dsc openssl \
    && sed -i -E 's/^( *\$ECASM_(x86_64|aarch64)=).*/\1/' openssl/crypto/ec/build.info \
    && test "$(grep -cE '^ *\$ECASM_(x86_64|aarch64)=$' openssl/crypto/ec/build.info)" = 2 \
    && env -C openssl ./Configure "$target" --cross-compile-prefix="$musl-" --prefix=/opt/deps \
        --libdir=lib --openssldir=/etc/ssl -Os -ffunction-sections -fdata-sections \
        -DOPENSSL_SMALL_FOOTPRINT no-shared no-module no-dso no-engine no-legacy no-tests \
        no-ui-console no-autoload-config no-async no-threads no-secure-memory no-ktls no-uplink \
        no-multiblock no-sock no-ssl3 no-tls1 no-tls1_1 no-dtls no-dgram no-sctp no-srtp \
        no-nextprotoneg no-psk no-srp no-ssl-trace no-weak-ssl-ciphers no-ocsp no-ct no-cms \
        no-cmp no-ts no-rfc3779 no-comp no-dh no-dsa no-ec2m no-sm2 no-sm3 no-sm4 no-gost \
        no-aria no-bf no-camellia no-cast no-des no-idea no-rc2 no-rc4 no-rc5 no-seed no-md4 \
        no-mdc2 no-rmd160 no-whirlpool no-blake2 no-siphash no-scrypt no-cmac no-ocb no-siv \
    && make -C openssl -j"$(nproc)" build_libs \
    && make -C openssl install_dev \
    && install -D -m 0644 openssl/debian/copyright /opt/deps/share/doc/OpenSSL.copyright \
    && dpkg-parsechangelog -l openssl/debian/changelog -S Version > /opt/deps/share/doc/OpenSSL.version \
    && rm -rf openssl

# libyaml, libseccomp and c-ares: the library alone, not the tools and tests of the package.
# Each library's copyright file and exact version go beside it (the image's linked-libraries).
# libyaml's source is its git tree: autoreconf makes its configure, as Debian's build does.
# c-ares keys its DNS query ids from /dev/urandom: a cross build cannot look for the file, and
# without it c-ares would fall back to rand(), predictable ids, so it is named. Its configure
# finds the types of recv, recvfrom and send by compiling every combination (over 700 for
# recvfrom, minutes of the build): their answers, the same on Linux for amd64 and arm64 with
# musl, are given.
RUN musl=$(cat /etc/sigreload-target) \
    && dpkg-source -x libyaml_*.dsc yaml \
    && env -C yaml autoreconf -fi \
    && env -C yaml ./configure --host="$musl" --build="$(dpkg-architecture -qDEB_BUILD_GNU_TYPE)" \
        --prefix=/opt/deps --enable-static --disable-shared \
        CFLAGS="-Os -ffunction-sections -fdata-sections" \
    && make -C yaml/src -j"$(nproc)" install \
    && make -C yaml/include install \
    && make -C yaml install-pkgconfigDATA \
    && install -D -m 0644 yaml/debian/copyright /opt/deps/share/doc/libyaml.copyright \
    && dpkg-parsechangelog -l yaml/debian/changelog -S Version > /opt/deps/share/doc/libyaml.version \
    && rm -rf yaml
RUN musl=$(cat /etc/sigreload-target) \
    && dpkg-source -x libseccomp_*.dsc seccomp \
    && env -C seccomp ./configure --host="$musl" --build="$(dpkg-architecture -qDEB_BUILD_GNU_TYPE)" \
        --prefix=/opt/deps --enable-static --disable-shared --disable-python \
        CFLAGS="-Os -ffunction-sections -fdata-sections" \
    && make -C seccomp/src -j"$(nproc)" install \
    && make -C seccomp/include install \
    && make -C seccomp install-pkgconfDATA \
    && install -D -m 0644 seccomp/debian/copyright /opt/deps/share/doc/libseccomp.copyright \
    && dpkg-parsechangelog -l seccomp/debian/changelog -S Version > /opt/deps/share/doc/libseccomp.version \
    && rm -rf seccomp
RUN musl=$(cat /etc/sigreload-target) \
    && dpkg-source -x c-ares_*.dsc ares \
    && env -C ares ./configure --host="$musl" --build="$(dpkg-architecture -qDEB_BUILD_GNU_TYPE)" \
        --prefix=/opt/deps --enable-static --disable-shared --disable-tests \
        --with-random=/dev/urandom \
        curl_cv_func_recv_args='int,void *,size_t,int,ssize_t' \
        curl_cv_func_recvfrom_args='int,void *,size_t,int,struct sockaddr *,socklen_t *,ssize_t' \
        curl_cv_func_send_args='int,const void *,size_t,int,ssize_t' \
        CFLAGS="-Os -ffunction-sections -fdata-sections" \
    && grep -qE '^#define RECVFROM_TYPE_RETV +ssize_t *$' ares/src/lib/ares_config.h \
    && make -C ares/src/lib -j"$(nproc)" install \
    && make -C ares/include install \
    && make -C ares install-pkgconfigDATA \
    && install -D -m 0644 ares/debian/copyright /opt/deps/share/doc/c-ares.copyright \
    && dpkg-parsechangelog -l ares/debian/changelog -S Version > /opt/deps/share/doc/c-ares.version \
    && rm -rf ares

# libcurl with HTTP and HTTPS (OpenSSL) only, and c-ares for DNS: the threaded resolver would
# start a thread per lookup, and sigreload runs one thread; c-ares answers on a socket that the
# event loop polls like any other. No other protocol, no compression, no IDN, no HTTP/2, no
# built-in CA bundle (the image has none: an HTTPS rule names its CA file), no proxy, cookie,
# MIME or authentication but basic (sigreload sends a bearer token as a header). Its verbose
# strings stay: without them, errors end in "Error" where they say why, and little is saved.
RUN musl=$(cat /etc/sigreload-target) \
    && dpkg-source -x curl_*.dsc curl \
    && env -C curl ./configure --host="$musl" --build="$(dpkg-architecture -qDEB_BUILD_GNU_TYPE)" \
        --prefix=/opt/deps --enable-static --disable-shared \
        CFLAGS="-Os -ffunction-sections -fdata-sections" \
        --with-openssl=/opt/deps --disable-openssl-auto-load-config \
        --enable-ares=/opt/deps --disable-threaded-resolver --disable-pthreads \
        --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp --disable-dict \
        --disable-telnet --disable-tftp --disable-pop3 --disable-imap --disable-smb \
        --disable-smtp --disable-gopher --disable-mqtt --disable-manual --disable-ntlm \
        --disable-ntlm-wb --disable-kerberos-auth --disable-negotiate-auth --disable-unix-sockets \
        --disable-alt-svc --disable-hsts --disable-doh --disable-netrc --disable-cookies \
        --disable-tls-srp --without-zlib --without-brotli --without-zstd --without-libidn2 \
        --without-libpsl --without-nghttp2 --without-ngtcp2 --without-nghttp3 --without-librtmp \
        --without-libssh2 --without-libssh --without-gssapi --without-ca-bundle --without-ca-path \
        --without-ca-fallback --disable-proxy --disable-crypto-auth --disable-mime \
        --disable-dateparse --disable-progress-meter --disable-get-easy-options \
        --disable-headers-api --disable-socketpair --disable-libcurl-option \
    && grep -q '^#define USE_ARES 1' curl/lib/curl_config.h \
    && ! grep -q '^#define USE_THREADS_POSIX 1' curl/lib/curl_config.h \
    && make -C curl/lib -j"$(nproc)" install \
    && make -C curl install-pkgconfigDATA \
    && make -C curl/include install \
    && install -D -m 0644 curl/debian/copyright /opt/deps/share/doc/libcurl.copyright \
    && dpkg-parsechangelog -l curl/debian/changelog -S Version > /opt/deps/share/doc/libcurl.version \
    && rm -rf curl

# ---- build: the static sigreload ---------------------------------------------------------------
FROM deps AS build
ARG TARGETARCH
WORKDIR /usr/src/sigreload
COPY Makefile ./
COPY src/ src/

# VERSION must be the Makefile's: the build stops here when the label would lie.
ARG VERSION=0.1.0
# cap_kill+p, permitted only: sigreload raises CAP_KILL to effective itself when the container's
# bounding set holds it (capabilities.add: [KILL]). With +ep, execve would fail with EPERM in a
# container that drops ALL, and the same-uid mode would not start (docs/SECURITY-MODES.md).
RUN musl=$(cat /etc/sigreload-target) \
    && grep -qx "VERSION := ${VERSION}" Makefile \
    && make static CC="$musl-gcc" \
    && mkdir /out \
    && "$musl-strip" -o /out/sigreload build/static/sigreload \
    && if [ "$TARGETARCH" = "$(dpkg --print-architecture)" ]; then \
        test "$(/out/sigreload --version)" = "sigreload ${VERSION}"; fi \
    && chmod 0755 /out/sigreload \
    && setcap cap_kill+p /out/sigreload \
    && getcap /out/sigreload

# What is linked in (a library counts when one of its own symbols is in the binary), with its
# exact Debian version and its copyright file: NOTICE says why.
# linter ignore=SC2016
RUN musl=$(cat /etc/sigreload-target) \
    && doc=/out/doc \
    && mkdir -p "$doc" \
    && cp /usr/share/common-licenses/LGPL-2.1 "$doc/" \
    && "$musl-nm" --defined-only build/static/sigreload > /tmp/nm \
    && awk '{ print $3 }' /tmp/nm > /tmp/symbols \
    && printf '%s\n' 'musl __libc_start_main musl-dev' 'OpenSSL SHA256_Init|CRYPTO_malloc -' \
        'libyaml yaml_parser_initialize -' 'libseccomp seccomp_init -' \
        'libmicrohttpd MHD_start_daemon -' 'libcurl curl_multi_init -' \
        'c-ares ares_library_init -' > /tmp/libraries \
    && while read -r lib symbol package; do \
        grep -qxE "$symbol" /tmp/symbols || continue; \
        if [ "$package" = - ]; then \
            version="$(cat "/opt/deps/share/doc/$lib.version") (Debian source package, built here)"; \
            cp "/opt/deps/share/doc/$lib.copyright" "$doc/"; \
        else \
            version="$(dpkg-query -W -f '${source:Version}' "$package:$TARGETARCH") ($package)"; \
            cp "/usr/share/doc/$package/copyright" "$doc/$lib.copyright"; \
        fi; \
        echo "$lib $version $TARGETARCH" >> "$doc/linked-libraries"; \
    done < /tmp/libraries \
    && cat "$doc/linked-libraries"

# ---- the image: the binary alone ------------------------------------------------------------
FROM scratch

ARG VERSION=0.1.0
ARG SOURCE=https://github.com/sigreload/sigreload
LABEL org.opencontainers.image.title="sigreload" \
      org.opencontainers.image.description="Config-watch hot-reload sidecar: signals the app's processes when the content of its ConfigMap or Secret files changes (pods with shareProcessNamespace: true)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

# buildah's COPY --from keeps the security.capability xattr (tests/package/test_image.py checks
# it with getcap). Some other builders have dropped file capabilities in COPY
# (moby/buildkit#2250): check `getcap` on the binary of an image built any other way.
COPY --from=build /out/sigreload /usr/local/bin/sigreload
COPY LICENSE NOTICE /usr/share/doc/sigreload/
COPY --from=build /out/doc/ /usr/share/doc/sigreload/

ENV PATH=/usr/local/bin
# 65532: the usual "nonroot" uid of distroless images, the chart's default runAsUser.
USER 65532:65532
# Rule file: /etc/sigreload/sigreload.yaml (the chart mounts it), or -c FILE / $SIGRELOAD_CONFIG.
ENTRYPOINT ["/usr/local/bin/sigreload"]
CMD ["run"]
