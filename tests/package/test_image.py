"""The image, built from the project's Dockerfile with podman/buildah, offline.

What a user pulling it would check: it runs `--version` as uid 65532, it is small (at most 3 MB,
and a test prints what weighs what), it holds the static binary and its licences alone (no
shell), the file capability cap_kill+p survived the build, it starts with every capability
dropped and has CAP_KILL when KILL is added, the image's own binary works under Kubernetes'
credentials (the `creds` helper), and the chart's own manifests, run by `podman kube play`,
reload a real nginx after a kubelet-style ConfigMap update, and its HTTPS requests reach servers
of each protocol, certificate type and cipher it keeps, trusting a private CA. The arm64 image
is cross-compiled on this machine (its build stage runs natively, never emulated) and its
binary runs under qemu-user; `make image-multiarch` makes the manifest list.
The build reads the Debian mirror from this machine's apt sources: no file names one.

Needs rootful podman, buildah, runc, catatonit, qemu-user-static, the offline base image and
dockerlinter: `make deps` (tests/tools/setup-podman.sh). A missing tool fails the test, it never
skips. The base image is made here when it is missing (tests/tools/base-image.sh, about a
minute). Everything the tests create is removed at the end (pods, volumes, containers, images,
manifest lists, temp dirs); the base image and the build cache (the build stages' layers, the
nginx layer) stay, for speed: a first build of both architectures takes 10 to 20 minutes on a
2-core machine, a cached one seconds.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import (BIN, FAST, ROOT, Log, Reloader, Target, pod, start,  # noqa: F401 (fixtures)
                      workdir)
from kubelet import AtomicVolume
from test_chart import CASES, CHART, helm, need_tools, parse
from test_security import EPERM_HINT, NONROOT, Sidecar, creds, rule

TOOLS = ROOT / "tests" / "tools"
sys.path.insert(0, str(TOOLS))
import apt_mirror  # noqa: E402  (tests/tools is not a package)

DOCKERLINTER = TOOLS / ".cache" / "dockerlinter" / "node_modules" / ".bin" / "dockerlinter"
BASE = "docker.io/library/debian:bookworm-slim"
RUN_ID = f"{os.getpid()}-{int(time.time())}"
IMAGE = f"localhost/sigreload-test:{RUN_ID}"
ARM64 = f"localhost/sigreload-test:{RUN_ID}-arm64"
MULTIARCH = f"localhost/sigreload-test:{RUN_ID}-multiarch"
NGINX = f"localhost/sigreload-test-nginx:{RUN_ID}"
MAX_SIZE = 3 * 1000 * 1000  # bytes: the image's budget (issue 12)
PODMAN_TIMEOUT = 600
BUILD_TIMEOUT = 3600  # a first, uncached build of one architecture on a busy 2-core machine
QEMU = "qemu-aarch64-static"
EM_AARCH64 = 183  # ELF e_machine
NATIVE, NATIVE_MACHINE = {"x86_64": ("amd64", 62), "aarch64": ("arm64", EM_AARCH64)}[os.uname().machine]
DOC = "usr/share/doc/sigreload"

NGINX_CONTAINERFILE = """\
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \\
    && apt-get install -y --no-install-recommends nginx \\
    && rm -rf /var/lib/apt/lists/*
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
"""


def report(request, line):
    """A line in pytest's output even with -q and captured output (sizes, durations)."""
    plugins = request.config.pluginmanager
    tr, capman = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if tr and capman:
        with capman.global_and_fixture_disabled():
            tr.ensure_newline()
            tr.write_line(f"test_image: {line}")
    else:
        print(f"test_image: {line}")


def podman(*args, timeout=120, check=True):
    r = subprocess.run(["podman", *map(str, args)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args))} exited {r.returncode}:\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def build(request, tag, context, dockerfile, what):
    t0 = time.monotonic()
    r = podman("build", "--pull=never", "--layers", "-f", dockerfile, "-t", tag, context,
               timeout=PODMAN_TIMEOUT, check=False)
    assert r.returncode == 0, f"building {what} failed:\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}"
    report(request, f"built {what} in {time.monotonic() - t0:.1f}s")


def make(request, target, what, **variables):
    """`make TARGET VAR=value...` in the repository, as a user builds the image."""
    t0 = time.monotonic()
    r = subprocess.run(["make", "-C", ROOT, target, *[f"{k}={v}" for k, v in variables.items()]],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert r.returncode == 0, f"make {target} ({what}) failed:\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}"
    report(request, f"built {what} in {time.monotonic() - t0:.1f}s")
    return r


# ---- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def podman_ready():
    """Fails, telling what to run, when the container tools are not set up."""
    if os.geteuid() != 0:
        pytest.fail("the image tests use rootful podman: run them as root", pytrace=False)
    missing = [t for t in ("podman", "buildah", "runc", "catatonit", "getcap")
               if not shutil.which(t)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run 'make deps' (tests/tools/setup-podman.sh)",
                    pytrace=False)
    runtime = podman("info", "--format", "{{.Host.OCIRuntime.Name}}").stdout.strip()
    if runtime != "runc":
        pytest.fail(f"podman uses the OCI runtime {runtime!r}, not runc (crun fails on this "
                    "machine's cgroups): run 'make deps' (tests/tools/setup-podman.sh sets it in "
                    "/etc/containers/containers.conf)", pytrace=False)
    if podman("image", "exists", BASE, check=False).returncode != 0:
        if not shutil.which("debootstrap"):
            pytest.fail(f"no {BASE} in podman's store and no debootstrap to make it: run "
                        "'make deps' (tests/tools/setup-podman.sh)", pytrace=False)
        subprocess.run(["bash", TOOLS / "base-image.sh"], check=True, timeout=PODMAN_TIMEOUT)


@pytest.fixture(scope="module")
def image(request, podman_ready):
    """The project's image for this machine's architecture, built by `make image`, tagged for
    this run only; removed at the end (the build stages' layers stay in podman's store as
    build cache)."""
    make(request, "image", f"the image {IMAGE}", IMAGE=IMAGE)
    try:
        yield IMAGE
    finally:
        podman("rmi", "--force", IMAGE, check=False)


@pytest.fixture(scope="module")
def arm64_image(request, podman_ready):
    """The arm64 image, cross-compiled on this machine by `make image PLATFORM=linux/arm64`."""
    make(request, "image", f"the arm64 image {ARM64}", IMAGE=ARM64, PLATFORM="linux/arm64")
    try:
        yield ARM64
    finally:
        podman("rmi", "--force", ARM64, check=False)


def _mount(image):
    """The image's root filesystem, mounted read-only on the host (any architecture)."""
    path = Path(podman("image", "mount", image).stdout.strip())
    try:
        yield path
    finally:
        podman("image", "unmount", image, check=False)


@pytest.fixture(scope="module")
def inspected(image):
    return json.loads(podman("image", "inspect", image).stdout)[0]


@pytest.fixture(scope="module")
def mounted(image):
    yield from _mount(image)


@pytest.fixture(scope="module")
def mounted_arm64(arm64_image):
    yield from _mount(arm64_image)


@pytest.fixture(scope="module")
def nginx_image(request, podman_ready):
    """Debian's nginx on the offline base image. Untagged at the end rather than removed: the
    layer stays as build cache, so the next run needs no download."""
    with tempfile.TemporaryDirectory(prefix="sigreload-nginx-") as ctx:
        (Path(ctx) / "Containerfile").write_text(NGINX_CONTAINERFILE)
        build(request, NGINX, ctx, Path(ctx) / "Containerfile", "the nginx image")
    try:
        yield NGINX
    finally:
        podman("untag", NGINX, check=False)


@pytest.fixture
def container_names():
    """Names of containers a test starts; removed at the end whatever happened."""
    names = []
    try:
        yield names
    finally:
        for name in names:
            podman("rm", "--force", "--time", "0", name, check=False)


# ---- the Dockerfile ---------------------------------------------------------------------------

def test_dockerfile_lints_clean():
    if not os.access(DOCKERLINTER, os.X_OK):
        pytest.fail(f"no {DOCKERLINTER}: run 'make deps' (tests/tools/setup-podman.sh)",
                    pytrace=False)
    if not shutil.which("shellcheck"):
        pytest.fail("no shellcheck (dockerlinter runs it on RUN lines): run 'make deps'",
                    pytrace=False)
    with tempfile.TemporaryDirectory() as cwd:  # it writes its shellcheck scripts into cwd
        r = subprocess.run([DOCKERLINTER, "-f", ROOT / "Dockerfile", "-e", "warning", "-j"],
                           cwd=cwd, capture_output=True, text=True, timeout=60)
    findings = json.loads(r.stdout) if r.stdout.strip().startswith("[") else r.stdout
    assert r.returncode == 0, f"dockerlinter -e warning: {findings}\n{r.stderr}"
    assert [f for f in findings if f["level"] != "info"] == []


# ---- the image's contents ---------------------------------------------------------------------

def test_image_runs_version_as_nonroot(request, image, inspected):
    want = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout
    r = podman("run", "--rm", image, "--version")
    assert r.stdout == want
    config = inspected["Config"]
    assert config["User"] == f"{NONROOT}:{NONROOT}"
    assert config["Entrypoint"] == ["/usr/local/bin/sigreload"]
    assert config["Cmd"] == ["run"]
    assert "PATH=/usr/local/bin" in config["Env"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == want.split()[-1]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    for key in ("title", "description", "source"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"no label {key}"
    # The figure the README cites (podman image inspect --format '{{.Size}}').
    report(request, f"image size {inspected['Size']} bytes ({inspected['Size'] / 1e6:.2f} MB), "
                    f"{inspected['Architecture']}")
    check_size(inspected["Size"])


def check_size(size):
    """At most 3 MB (issue 12's budget), with libcurl and OpenSSL's TLS linked in: musl, and
    every library cut to what sigreload calls (test_what_the_binary_weighs_library_by_library
    prints what weighs what)."""
    assert size <= MAX_SIZE, f"the image weighs {size} bytes, over the 3 MB budget"


def _elf(path):
    """(e_machine, whether it asks for a dynamic loader: a PT_INTERP program header) of an
    ELF64 little-endian executable."""
    data = path.read_bytes()
    assert data[:6] == b"\x7fELF\x02\x01", f"{path} is not an ELF64 little-endian file"
    machine, = struct.unpack_from("<H", data, 0x12)
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    interp = any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))
    return machine, interp


def linked_libraries(root):
    """{library: line} of the image's linked-libraries file."""
    lines = (root / DOC / "linked-libraries").read_text().splitlines()
    return {line.split()[0]: line for line in lines}


def notice_libraries():
    """The libraries NOTICE's table names."""
    text = (ROOT / "NOTICE").read_text()
    table = text.split("  library ", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0] for line in table.splitlines()[1:] if line.startswith("  ") and line[2] != " "}


def check_contents(root, machine):
    """The binary, static, for `machine`, with cap_kill+p; LICENSE, NOTICE, and a copyright
    file for every library linked in; nothing else."""
    libs = linked_libraries(root)
    want = {"usr/local/bin/sigreload", f"{DOC}/LICENSE", f"{DOC}/NOTICE", f"{DOC}/LGPL-2.1",
            f"{DOC}/linked-libraries", *(f"{DOC}/{lib}.copyright" for lib in libs)}
    files = {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}
    assert files == want
    binary = root / "usr/local/bin/sigreload"
    st = binary.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o755)
    assert _elf(binary) == (machine, False), "not a static binary for the target"
    getcap = subprocess.run(["getcap", binary], capture_output=True, text=True, check=True)
    assert getcap.stdout.split()[-1:] == ["cap_kill=p"], getcap.stdout  # permitted, not +ep
    for name in ("LICENSE", "NOTICE"):
        assert (root / DOC / name).read_bytes() == (ROOT / name).read_bytes()
    assert set(libs) == {"musl", "OpenSSL", "libyaml", "libseccomp", "libmicrohttpd", "libcurl",
                         "c-ares"}, libs
    assert set(libs) <= notice_libraries(), "a linked library NOTICE does not name"
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (root / DOC / "LGPL-2.1").read_text()
    return libs


def test_image_holds_the_static_binary_and_its_licences_alone(request, mounted):
    libs = check_contents(mounted, NATIVE_MACHINE)
    report(request, "linked: " + "; ".join(libs.values()))
    assert re.fullmatch(rf"musl 1\.2\.\S+ \(musl-dev\) {NATIVE}", libs["musl"]), libs["musl"]
    for lib in ("libmicrohttpd", "OpenSSL", "libcurl", "libyaml", "libseccomp", "c-ares"):
        assert re.fullmatch(rf"{lib} \S+ \(Debian source package, built here\) {NATIVE}",
                            libs[lib]), libs[lib]


def test_image_has_no_shell(image):
    for shell in ("/bin/sh", "/bin/bash", "/busybox"):
        r = podman("run", "--rm", "--entrypoint", shell, image, "-c", "true", check=False)
        assert r.returncode != 0 and "no such file or directory" in r.stderr, r.stderr


# ---- capabilities -------------------------------------------------------------------------------

@pytest.mark.parametrize("caps,msg", [
    (["--cap-drop=ALL"], "no CAP_KILL: can signal only processes of our own uid"),
    (["--cap-drop=ALL", "--cap-add=KILL"], "CAP_KILL: can signal processes of any uid"),
], ids=["drop-all", "add-kill"])
def test_image_starts_in_both_modes(image, workdir, container_names, caps, msg):
    """As the chart runs it: read-only root, no_new_privs, the rule file at the default path."""
    os.chmod(workdir, 0o755)
    (workdir / "sigreload.yaml").write_text(
        'metrics_listen: ""\nrules:\n' + rule("self", "/etc/sigreload", "nothing"))
    name = f"sigreload-test-{RUN_ID}-{len(caps)}"
    container_names.append(name)
    proc = start(["podman", "run", "--rm", "--name", name, "--network=none", "--read-only",
                  "--security-opt=no-new-privileges", *caps,
                  "-v", f"{workdir}:/etc/sigreload:ro", image])
    try:
        log = Log(proc.err)
        log.expect("starting", config="/etc/sigreload/sigreload.yaml", timeout=30)
        log.expect(msg, uid=NONROOT)
        log.expect("watches armed")
        podman("stop", "--time", "10", name)
        assert proc.wait(30) == 0  # SIGTERM: a clean exit, as PID 1 too
    finally:
        proc.close()


@pytest.fixture
def image_binary(mounted, workdir):
    """The image's binary, copied out with its xattrs (plain cp would drop the capability)."""
    os.chmod(workdir, 0o755)
    path = workdir / "sigreload-from-image"
    subprocess.run(["cp", "--preserve=mode,xattr", mounted / "usr/local/bin/sigreload", path],
                   check=True)
    return path


def test_image_binary_under_kubernetes_credentials(pod, workdir, image_binary):
    """The shipped binary, as containerd runs it for the chart's two modes: KILL added (bounding,
    permitted, effective; no ambient; no_new_privs) signals a root target; all dropped, it
    still starts, and says what to do."""
    vol = AtomicVolume(workdir / "vol")
    vol.write({"app.conf": "v1\n"})
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")  # root

    r = Sidecar(pod, workdir, image_binary, creds("kill"), rule("app", vol.root, "mydaemon"))
    r.log.expect("CAP_KILL: can signal processes of any uid", uid=NONROOT)
    r.log.expect("watching", rule="app")
    vol.write({"app.conf": "v2\n"})
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", "v2\\n")
    r.log.expect("reloaded", rule="app")
    assert r.proc.stop() == 0

    r = Sidecar(pod, workdir, image_binary, creds("none"), rule("app", vol.root, "mydaemon"))
    r.log.expect("no CAP_KILL: can signal only processes of our own uid", uid=NONROOT)
    r.log.expect("watching", rule="app")
    vol.write({"app.conf": "v3\n"})
    assert r.log.expect("signal failed", rule="app", reason="eperm")["err"] == EPERM_HINT
    assert r.proc.stop() == 0


# ---- HTTPS, as the image's cut-down OpenSSL does it ---------------------------------------------

# What servers offer, one server each: the image's OpenSSL keeps TLS 1.2 and 1.3, RSA and ECDSA
# certificates, ECDHE (X25519, P-256), AES-GCM and ChaCha20-Poly1305, and little else.
TLS_SERVERS = {
    "tls13-ecdsa-aes-gcm-x25519": ("ec", ["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256",
                                          "-groups", "X25519"]),
    "tls13-rsa-chacha20-p256": ("rsa", ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256",
                                        "-groups", "P-256"]),
    "tls12-ecdhe-rsa-aes256-gcm": ("rsa", ["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"]),
    "tls12-ecdhe-ecdsa-chacha20": ("ec", ["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]),
}


def private_cas(d):
    """Two private CAs, one RSA and one ECDSA, each of which signed a server certificate of its
    own key type for 127.0.0.1: d/{rsa,ec}-ca.pem, d/{rsa,ec}.pem, d/{rsa,ec}.key."""
    def openssl(*args):
        subprocess.run(["openssl", *map(str, args)], cwd=d, check=True, capture_output=True)

    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for kind, key in (("rsa", ["rsa:2048"]), ("ec", ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])):
        openssl("req", "-x509", "-newkey", *key, "-nodes", "-keyout", f"{kind}-ca.key", "-out",
                f"{kind}-ca.pem", "-days", "2", "-subj", f"/CN=sigreload image test {kind} CA")
        openssl("req", "-newkey", *key, "-nodes", "-keyout", f"{kind}.key", "-out", f"{kind}.csr",
                "-subj", f"/CN={kind} server")
        openssl("x509", "-req", "-in", f"{kind}.csr", "-CA", f"{kind}-ca.pem", "-CAkey", f"{kind}-ca.key",
                "-CAcreateserial", "-out", f"{kind}.pem", "-days", "2", "-extfile", "san.ext")


def test_image_binary_reloads_over_https_with_a_private_ca(pod, workdir, image_binary):
    """The image's binary, each HTTP rule against a server (openssl s_server) that offers one
    protocol, certificate type, key exchange and cipher alone, trusting the rule's private CA:
    each request is made. Another CA's certificate, or no CA file, is refused, and the log
    says it is the certificate."""
    pki = workdir / "pki"
    pki.mkdir()
    private_cas(pki)
    servers, text, vols = [], FAST + "rules:\n", {}
    try:
        cases = {name: (kind, options, pki / f"{kind}-ca.pem")
                 for name, (kind, options) in TLS_SERVERS.items()}
        cases["another-ca"] = ("rsa", ["-tls1_3"], pki / "ec-ca.pem")
        cases["no-ca-file"] = ("ec", ["-tls1_3"], None)
        for name, (kind, options, ca) in cases.items():
            port = free_port()
            s = start(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-www",
                       "-cert", pki / f"{kind}.pem", "-key", pki / f"{kind}.key", *options])
            servers.append(s)
            s.out.expect("^ACCEPT")
            vols[name] = AtomicVolume(workdir / name)
            vols[name].write({"app.conf": "v1\n"})
            tls = f", tls: {{ca_file: {ca}}}" if ca else ""
            text += (f"  - name: {name}\n    paths: [{vols[name].root}]\n"
                     f"    http: {{url: 'https://127.0.0.1:{port}/', method: GET, retries: 0{tls}}}\n")
        r = Reloader(pod, workdir, text, binary=image_binary)
        for name in TLS_SERVERS:
            vols[name].write({"app.conf": "v2\n"})
            r.log.expect("requested", rule=name, status=200)
        for name in ("another-ca", "no-ca-file"):
            vols[name].write({"app.conf": "v2\n"})
            failed = r.log.expect("request failed", rule=name, status=0)
            assert failed["err"].startswith("SSL certificate problem: "), failed
        assert r.stop() == 0
    finally:
        for s in servers:
            s.close()


# ---- the chart's own manifests in a pod: nginx and the sidecar ----------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def site(body):
    return f'server {{ listen 8080; location / {{ return 200 "{body}\\n"; }} }}\n'


def http_get(port, path="/"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return None, ""


def wait_for(port, want, timeout=30):
    """Polls nginx through the hostPort until it serves `want` (nginx says nothing when a new
    worker starts serving: there is no line to wait for)."""
    deadline = time.monotonic() + timeout
    while (got := http_get(port)) != (200, want):
        assert time.monotonic() < deadline, f"nginx serves {got!r}, not {want!r}"
        time.sleep(0.05)


def get_in_pod(host_pid, path):
    """(status, body) of GET http://127.0.0.1:9533{path} from inside the pod's network namespace
    (the chart publishes sigreload's port to no host port)."""
    r = subprocess.run(["nsenter", "-t", str(host_pid), "-n", "curl", "-s", "-w", "\n%{http_code}",
                        f"http://127.0.0.1:9533{path}"], capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def chart_pod(workdir, name, confdir, web_port, *values):
    """The chart's manifests as `helm template NAME` renders them with tests/chart/podman.yaml,
    this run's images and `values` (--set words), for podman: the app's ConfigMap volume
    becomes a hostPath on `confdir`, where the test replays the kubelet's updates (podman's own
    ConfigMap volumes are static copies). Returns the YAML file."""
    need_tools()
    overlay = workdir / "images.yaml"
    overlay.write_text(yaml.safe_dump({
        "image": {"repository": IMAGE.rsplit(":", 1)[0], "tag": IMAGE.rsplit(":", 1)[1]},
        "app": {"image": {"repository": NGINX.rsplit(":", 1)[0], "tag": NGINX.rsplit(":", 1)[1],
                          "pullPolicy": "Never"},
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP",
                           "hostPort": web_port}]},
    }))
    out = helm("template", name, CHART, "-f", CASES / "podman.yaml", "-f", overlay, *values).stdout
    documents = parse(out)
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    [volume] = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "app-config"]
    del volume["configMap"]
    volume["hostPath"] = {"path": str(confdir), "type": "Directory"}
    path = workdir / "chart.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


class KubePod:
    """`podman kube play` of a YAML file whose Deployment `name` makes the pod `name`-pod-0;
    at close the pod, its containers and the ConfigMap volumes podman made are removed."""

    def __init__(self, name, yaml_path, wait=True):
        self.name, self.yaml, self.followers = f"{name}-pod-0", yaml_path, []
        self.volumes = [d["metadata"]["name"] for d in yaml.safe_load_all(yaml_path.read_text())
                        if d and d["kind"] == "ConfigMap"]
        self.play = start(["podman", "kube", "play", yaml_path])
        if wait:
            assert self.play.wait(PODMAN_TIMEOUT) == 0, self.play.err.drain() or self.play.err.lines

    def container(self, container):
        return f"{self.name}-{container}"

    def follow(self, container):
        """`podman logs -f` of a container: its stdout and stderr as Streams, for handshakes."""
        proc = start(["podman", "logs", "--follow", self.container(container)])
        self.followers.append(proc)
        return proc

    def host_pid(self, container):
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.container(container)).stdout)

    def state(self, container):
        return podman("inspect", "--format", "{{.State.Status}}", self.container(container)).stdout.strip()

    def close(self):
        if self.play.p.poll() is None:
            self.play.stop(signal.SIGTERM, timeout=60)
        self.play.close()
        podman("kube", "down", self.yaml, check=False)
        podman("pod", "rm", "--force", "--ignore", self.name, check=False)
        for volume in self.volumes:
            podman("volume", "rm", "--force", volume, check=False)
        for proc in self.followers:
            proc.close()


def nspid(host_pid):
    """The pid as the process's own (the pod's) PID namespace numbers it."""
    with open(f"/proc/{host_pid}/status") as f:
        return int(next(line for line in f if line.startswith("NSpid:")).split()[-1])


def test_chart_pod_reloads_nginx_after_a_configmap_update(request, image, nginx_image, workdir):
    """The chart's own Deployment (sidecar.native false: podman has no native sidecars) with
    the killCapability securityContext, real nginx and the image."""
    os.chmod(workdir, 0o755)
    vol = AtomicVolume(workdir / "conf.d")
    vol.write({"default.conf": site("v1")})
    web = free_port()
    name = f"sigreload-test-{RUN_ID}"
    yaml_path = chart_pod(workdir, name, vol.root, web)

    t0 = time.monotonic()
    kp = KubePod(name, yaml_path)
    try:
        log = Log(kp.follow("sigreload").err)  # sigreload logs to stderr
        nginx = kp.follow("nginx").err
        log.expect("CAP_KILL: can signal processes of any uid", uid=NONROOT, timeout=30)
        log.expect("watching", rule="nginx")
        wait_for(web, "v1\n")
        sidecar_host = kp.host_pid("sigreload")
        assert get_in_pod(sidecar_host, "/readyz")[0] == 200  # what the chart's probes ask
        assert get_in_pod(sidecar_host, "/healthz")[0] == 200
        master_host = kp.host_pid("nginx")
        master = nspid(master_host)
        report(request, f"chart pod up in {time.monotonic() - t0:.1f}s")

        vol.write({"default.conf": site("v2")})  # the kubelet's atomic update
        ev = log.expect("signaled", rule="nginx", signal="SIGHUP")
        assert int(ev["pid"]) == master  # the master, never a worker
        nginx.expect(rf"signal 1 \(SIGHUP\) received from {nspid(sidecar_host)}, reconfiguring")
        wait_for(web, "v2\n")
        log.expect("reloaded", rule="nginx", targets=1)
        assert kp.host_pid("nginx") == master_host  # reloaded in place, not restarted
        assert log.count("signaled") == 1
        _, text = get_in_pod(sidecar_host, "/metrics")
        assert 'sigreload_signals_sent_total{rule="nginx",signal="SIGHUP"} 1' in text
        # a file-capable binary is not dumpable (its /proc/PID is root's): its own /proc/self/fd
        # must still be readable for the process_* metrics
        fds = [line for line in text.splitlines() if line.startswith("process_open_fds ")]
        assert fds and int(fds[0].split()[1]) > 0, fds
    finally:
        kp.close()
    assert podman("pod", "exists", kp.name, check=False).returncode != 0
    assert not [v for v in kp.volumes if podman("volume", "exists", v, check=False).returncode == 0]


def test_podman_has_no_native_sidecars(image, nginx_image, workdir):
    """What podman 4.3 does with the chart's native sidecar (the chart README says it): with
    the probes, it refuses the pod; without them, it runs sigreload as an ordinary init
    container and waits for it to exit, so nginx is never started and `kube play` never
    returns. If this fails, podman has learnt native sidecars: run that mode for real here."""
    os.chmod(workdir, 0o755)
    vol = AtomicVolume(workdir / "conf.d")
    vol.write({"default.conf": site("v1")})
    name = f"sigreload-test-{RUN_ID}-native"

    kp = KubePod(name, chart_pod(workdir, name, vol.root, free_port(), "--set", "sidecar.native=true"),
                 wait=False)
    try:
        assert kp.play.wait(PODMAN_TIMEOUT) != 0
        kp.play.err.drain()
        assert any("cannot create an init container that has either of lifecycle, livenessProbe, "
                   "readinessProbe, or startupProbe set" in line for line in kp.play.err.lines), kp.play.err.lines
    finally:
        kp.close()

    kp = KubePod(name, chart_pod(workdir, name, vol.root, free_port(), "--set", "sidecar.native=true",
                                 "--set", "metrics.enabled=false"), wait=False)
    try:
        deadline = time.monotonic() + PODMAN_TIMEOUT  # until podman has started the container
        while podman("container", "inspect", "--format", "{{.State.Status}}", kp.container("sigreload"),
                     check=False).stdout.strip() != "running":
            assert kp.play.p.poll() is None, kp.play.err.drain() or kp.play.err.lines
            assert time.monotonic() < deadline, "podman kube play started no sigreload container"
            time.sleep(0.1)
        Log(kp.follow("sigreload").err).expect("watches armed", timeout=60)
        assert kp.state("sigreload") == "running"
        assert kp.state("nginx") == "created"  # held back behind the "init container"
        assert kp.play.p.poll() is None  # and kube play still waits for it to exit
    finally:
        kp.close()


# ---- arm64: cross-compiled, run under qemu-user ------------------------------------------------

def qemu():
    """qemu-aarch64-static, called directly: it needs no binfmt_misc registration, which a
    fresh CI machine (or a container) may not have or allow."""
    path = shutil.which(QEMU)
    if path is None:
        pytest.fail(f"no {QEMU}: run 'make deps' (tests/tools/setup-podman.sh installs "
                    "qemu-user-static)", pytrace=False)
    return path


def test_arm64_image_is_cross_compiled_without_emulation(request, arm64_image, mounted_arm64):
    """`podman build --platform linux/arm64` on this amd64 machine: an arm64 image whose build
    ran natively. The build stages are FROM --platform=$BUILDPLATFORM: they are this machine's
    architecture, and they ran here although nothing here can run an arm64 program (no
    binfmt_misc handler is involved: the base image exists for this architecture only)."""
    inspected = json.loads(podman("image", "inspect", arm64_image).stdout)[0]
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "arm64")
    assert inspected["Config"]["Labels"]["org.opencontainers.image.licenses"] == "Apache-2.0"
    report(request, f"arm64 image size {inspected['Size']} bytes ({inspected['Size'] / 1e6:.2f} MB)")
    libs = check_contents(mounted_arm64, EM_AARCH64)
    assert all(line.endswith(" arm64") for line in libs.values()), libs
    assert podman("image", "inspect", "--format", "{{.Architecture}}", BASE).stdout.strip() == NATIVE

    # The build stage as podman keeps it (labelled arm64, the build's platform, whatever its
    # content): its programs are this machine's, and it knows the target by its musl triplet.
    stage = f"{ARM64}-build-stage"
    make(request, "image", "the arm64 image's build stage (cached)", IMAGE=stage,
         PLATFORM="linux/arm64", IMAGE_STAGE="build")
    try:
        r = podman("run", "--rm", "--network=none", stage, "sh", "-c",
                   "dpkg --print-architecture; dpkg --print-foreign-architectures; cat /etc/sigreload-target")
        assert r.stdout.split() == [NATIVE, "arm64", "aarch64-linux-musl"]
    finally:
        podman("untag", stage, check=False)  # not rmi: that would prune the stages it cached
    check_size(inspected["Size"])


@pytest.fixture
def arm64_binary(mounted_arm64, workdir):
    os.chmod(workdir, 0o755)
    path = workdir / "sigreload-arm64"
    shutil.copy(mounted_arm64 / "usr/local/bin/sigreload", path)
    return path


def test_arm64_binary_runs_under_qemu_user(pod, workdir, arm64_binary):
    """The arm64 binary does what the native one does: --version, check, hash and match print
    the same; run reloads a target after a kubelet-style update. What qemu-user cannot
    emulate: seccomp (it refuses filters, which would stop its own system calls), so run says
    "seccomp filter not applied" and goes on without it. inotify, epoll, signalfd, timerfd,
    pidfd_open and pidfd_send_signal (qemu passes them to the kernel), capabilities and the
    HTTP endpoint all work."""
    emu = [qemu(), arm64_binary]
    vol = AtomicVolume(workdir / "vol")
    vol.write({"app.conf": "v1\n", "extra.conf": "x\n"})
    config = workdir / "sigreload.yaml"
    config.write_text("debounce: 50ms\nmax_wait: 2s\nverify_after: 100ms\nhandler_wait: 5s\n"
                      "rules:\n" + rule("app", vol.root, "mydaemon"))

    def same(*args):
        native = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)
        arm64 = subprocess.run([*emu, *args], capture_output=True, text=True, timeout=60)
        assert (arm64.returncode, arm64.stdout) == (native.returncode, native.stdout), arm64.stderr
        return arm64.stdout

    assert same("--version").startswith("sigreload ")
    assert "app" in same("check", "-c", config)
    assert same("hash", vol.root).count("\n") >= 2

    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    code, out, err = pod.run([*emu, "match", "-c", config], timeout=60)
    native = pod.run([BIN, "match", "-c", config], timeout=60)
    assert (code, out) == native[:2], err
    assert re.search(rf"\b{t.pid}\b.*mydaemon", out), out

    proc = pod.spawn([*emu, "run", "-c", config, "--log-level", "debug", "--metrics-listen", "127.0.0.1:0"])
    try:
        log = Log(proc.err)
        log.expect("watching", rule="app", timeout=60)
        # qemu-user refuses seccomp filters: libseccomp gives up with ECANCELED
        log.expect("seccomp filter not applied", err="Operation canceled", timeout=60)
        vol.write({"app.conf": "v2\n", "extra.conf": "x\n"})
        assert t.expect_signal(timeout=60) == (t.pid, "master", "SIGHUP", "v2\\n")
        log.expect("reloaded", rule="app", targets=1, timeout=60)
        assert proc.stop(timeout=60) == 0
    finally:
        proc.close()


def test_make_image_multiarch_makes_a_manifest_list(request, image, arm64_image):
    """`make image-multiarch`: an amd64 + arm64 manifest list of two images built as `make
    image` builds them, from the layers the two images above left in the build cache."""
    try:
        make(request, "image-multiarch", f"the manifest list {MULTIARCH} (cached)", IMAGE=MULTIARCH)
        manifests = json.loads(podman("manifest", "inspect", MULTIARCH).stdout)["manifests"]
        assert sorted((m["platform"]["os"], m["platform"]["architecture"]) for m in manifests) == [
            ("linux", "amd64"), ("linux", "arm64")]
        for arch in ("amd64", "arm64"):
            assert podman("image", "inspect", "--format", "{{.Architecture}}",
                          f"{MULTIARCH}-{arch}").stdout.strip() == arch
    finally:
        podman("manifest", "rm", MULTIARCH, check=False)
        podman("rmi", "--force", f"{MULTIARCH}-amd64", f"{MULTIARCH}-arm64", check=False)


# ---- libcurl, as the HTTP action links it -------------------------------------------------------

PROBE_SCRIPT = r"""
set -e
musl=$(cat /etc/sigreload-target)
"$musl-gcc" -Os -static -Wl,--gc-sections -o /probe/libcurl-probe \
    /probe/libcurl-probe.c $(pkg-config --cflags libcurl) $(pkg-config --static --libs libcurl)
"$musl-nm" --defined-only /probe/libcurl-probe > /probe/libcurl-probe.nm
"$musl-strip" /probe/libcurl-probe
"""


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_libcurl_is_static_http_https_c_ares_and_threadless(request, arch, podman_ready, workdir):
    """The static libcurl the image's build stage makes from Debian's source: HTTP and HTTPS
    (OpenSSL) only, c-ares for DNS, no thread (no threaded resolver: sigreload runs one
    thread). A probe calling what the HTTP action calls links against it as `make static`
    links (pkg-config --static, --gc-sections), runs (under qemu for arm64), and says so; its
    size is what libcurl with OpenSSL's TLS weighs with musl alone."""
    stage = f"localhost/sigreload-test:{RUN_ID}-build-{arch}"
    make(request, "image", f"the {arch} build stage", IMAGE=stage, PLATFORM=f"linux/{arch}",
         IMAGE_STAGE="build")
    try:
        os.chmod(workdir, 0o777)
        shutil.copy(TOOLS / "libcurl-probe.c", workdir)
        podman("run", "--rm", "--network=none", "-v", f"{workdir}:/probe:Z", stage, "sh", "-c",
               PROBE_SCRIPT, timeout=PODMAN_TIMEOUT)
    finally:
        podman("untag", stage, check=False)  # not rmi: that would prune the stages it cached
    run = [qemu()] if arch == "arm64" and NATIVE != "arm64" else []
    probe = workdir / "libcurl-probe"
    out = subprocess.run([*run, probe], capture_output=True, text=True, timeout=60, check=True).stdout
    info = dict(line.split(" ", 1) for line in out.splitlines())
    assert info["protocols"] == "http https"
    assert info["ssl"].startswith("OpenSSL/3.")
    assert info["ares"] != "none" and info["asynchdns"] == "1"
    symbols = {line.split()[-1] for line in (workdir / "libcurl-probe.nm").read_text().splitlines()}
    assert "curl_multi_socket_action" in symbols and "ares_init_options" in symbols
    assert "pthread_create" not in symbols  # no thread anywhere in it
    report(request, f"{arch}: libcurl {info['version']} ({info['ssl']}, c-ares {info['ares']}): "
                    f"the probe weighs {probe.stat().st_size} bytes stripped")


# ---- what weighs what in the image's binary ------------------------------------------------------

def build_stage_file(request, arch, path, workdir):
    """A file of the image's build stage for `arch` (built by `make image IMAGE_STAGE=build`,
    from the build cache), copied into workdir."""
    stage = f"localhost/sigreload-test:{RUN_ID}-build-{arch}"
    make(request, "image", f"the {arch} build stage", IMAGE=stage, PLATFORM=f"linux/{arch}",
         IMAGE_STAGE="build")
    try:
        os.chmod(workdir, 0o777)
        podman("run", "--rm", "--network=none", "-v", f"{workdir}:/out:Z", stage, "cp", path, "/out/")
    finally:
        podman("untag", stage, check=False)  # not rmi: that would prune the stages it cached
    return workdir / Path(path).name


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_what_the_binary_weighs_library_by_library(request, arch, podman_ready, workdir):
    """The code and data of the image's binary by library, from the link map `make static`
    writes (tests/tools/mapsize.py): the README's breakdown of the image's size. What the
    Dockerfile leaves out of OpenSSL is not there: P-256's assembly and its table, and the
    socket BIOs with the C library's getaddrinfo, which they called."""
    link_map = build_stage_file(request, arch, "build/static/sigreload.map", workdir)
    r = subprocess.run([sys.executable, TOOLS / "mapsize.py", link_map, "--members", "100000"],
                       capture_output=True, text=True, check=True)
    sizes = {name: int(size) for name, size in (line.rsplit(" ", 1) for line in r.stdout.splitlines())}
    libraries = ["sigreload", "libcrypto.a", "libssl.a", "libc.a", "libcurl.a", "libcares.a",
                 "libmicrohttpd.a", "libyaml.a", "libseccomp.a"]
    assert all(sizes.get(name, 0) > 0 for name in libraries), sizes
    members = [name for name in sizes if "(" in name]
    for gone in ("ecp_nistz256", "bio_sock", "bio_addr", "libc.a(getaddrinfo."):
        assert not [m for m in members if gone in m], gone
    report(request, f"{arch}: code and data by library, in bytes: " + ", ".join(
        f"{name} {sizes[name]}" for name in sorted(sizes, key=sizes.get, reverse=True)
        if "(" not in name and name != "total" and sizes[name] >= 10000) + f"; all {sizes['total']}")


# ---- no file names a mirror or a registry host -------------------------------------------------

APT_CASES = {
    "deb822": (
        {"sources.list.d/debian.sources": (
            "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            "# security\nTypes: deb\nURIs: https://security.example/debian-security\n"
            "Suites: bookworm-security\nComponents: main contrib\n")},
        ("http://mirror.example/debian", "https://security.example/debian-security")),
    "one-line with options, a comment and deb-src": (
        {"sources.list": ("# the archive\ndeb-src http://src.example/debian bookworm main\n"
                          "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main # x\n")},
        ("http://one.example/debian", None)),
    "sources.list.d in name order, Enabled: no and other suffixes skipped": (
        {"sources.list.d/b.list": "deb http://b.example/debian bookworm main\n",
         "sources.list.d/a.sources": ("Enabled: no\nTypes: deb\nURIs: http://off.example/debian\n"
                                      "Suites: bookworm\nComponents: main\n"),
         "sources.list.d/c.sources.disabled": "deb http://disabled.example/debian bookworm main\n",
         "sources.list.d/a.list": "deb http://a.example/debian bookworm-security main\n"},
        ("http://b.example/debian", "http://a.example/debian")),
    "another release only": (
        {"sources.list": "deb http://m.example/debian trixie main\n"},
        "no enabled 'deb' entry over http(s) for suite bookworm, component main"),
    "no main": (
        {"sources.list": "deb http://m.example/debian bookworm contrib\n"},
        "no enabled 'deb' entry over http(s) for suite bookworm, component main"),
    "a local file archive": (
        {"sources.list": "deb file:/srv/debian bookworm main\n"},
        "no enabled 'deb' entry over http(s) for suite bookworm, component main"),
    "nothing": ({}, "no Debian archive in apt's sources"),
    "not Debian": (
        {"sources.list": "deb http://m.example/ubuntu noble main\n", "os-release": "ID=ubuntu\nVERSION_CODENAME=noble\n"},
        "this machine is not Debian with a release name in /etc/os-release (ID=ubuntu, VERSION_CODENAME=noble)"),
    "a broken deb822 file": (
        {"sources.list.d/x.sources": "Types: deb\nthis is not a field\n"},
        "x.sources:2: not a 'Field: value' line: 'this is not a field'"),
}


@pytest.mark.parametrize("case", APT_CASES)
def test_apt_mirror_reads_the_mirror_as_apt_does(case, tmp_path):
    files, want = APT_CASES[case]
    etc = tmp_path / "etc"
    (etc / "apt" / "sources.list.d").mkdir(parents=True)
    (etc / "os-release").write_text(files.get("os-release", 'ID=debian\nVERSION_CODENAME="bookworm"\n'))
    for name, text in files.items():
        if name != "os-release":
            (etc / "apt" / name).write_text(text)
    r = subprocess.run([sys.executable, TOOLS / "apt_mirror.py", "--root", tmp_path, "--format", "build-args"],
                       capture_output=True, text=True)
    if isinstance(want, tuple):
        assert r.returncode == 0, r.stderr
        archive, security = want
        assert r.stdout.split() == [f"--build-arg=DEBIAN_MIRROR={archive}"] + (
            [f"--build-arg=DEBIAN_SECURITY_MIRROR={security}"] if security else [])
        assert ("no security archive" in r.stderr) == (security is None)
    else:
        assert (r.returncode, r.stdout) == (1, "")
        assert r.stderr.startswith("apt_mirror: error: ") and want in r.stderr, r.stderr
        assert r.stderr.rstrip().endswith("set DEBIAN_MIRROR (and DEBIAN_SECURITY_MIRROR) to the Debian "
                                          "mirror to build from")


def test_no_file_names_a_mirror_or_registry_host():
    """The Debian mirror comes from this machine's apt sources, the npm registry from npm's
    configuration: no file of the project names the hosts this machine uses. (The base image's
    name, docker.io/library/debian, and the published image's, ghcr.io/sigreload/sigreload, are
    names of images, which the builds never pull: --pull=never, and the base made offline.)"""
    hosts = set(apt_mirror.hosts())
    assert hosts, "this machine's apt has no sources: nothing to check against"
    if shutil.which("npm"):
        registry = subprocess.run(["npm", "config", "get", "registry"], capture_output=True, text=True)
        hosts |= {h for h in [urllib.parse.urlsplit(registry.stdout.strip()).hostname] if h}
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\0")
    found = []
    for f in filter(None, files):
        path = ROOT / f
        if path.is_file():
            text = path.read_bytes().decode(errors="replace").lower()
            found += [f"{f}: {h}" for h in sorted(hosts) if h.lower() in text]
    assert not found, "files that name a host of this machine's package sources:\n" + "\n".join(found)
