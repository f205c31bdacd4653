"""The image, built from the project's Dockerfile with podman/buildah, offline.

What a user pulling it would check: it runs `--version` as uid 65532, it is small, it holds the
static binary alone (no shell), the file capability cap_kill+p survived the build, it starts with
every capability dropped and has CAP_KILL when KILL is added, the image's own binary works under
Kubernetes' credentials (the `creds` helper), and in a pod with `shareProcessNamespace: true`
(`podman kube play`) it reloads a real nginx after a kubelet-style ConfigMap update.

Needs rootful podman, buildah, runc, catatonit, the offline base image and dockerlinter:
`make deps` (tests/tools/setup-podman.sh). A missing tool fails the test, it never skips. The
base image is made here when it is missing (tests/tools/base-image.sh, about a minute). Everything
the tests create is removed at the end (pods, containers, images, temp dirs); the base image and
the build cache (the build stage's layers, the nginx layer) stay, for speed.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import BIN, ROOT, Log, Target, start
from kubelet import AtomicVolume
from test_security import EPERM_HINT, NONROOT, Sidecar, creds, rule

TOOLS = ROOT / "tests" / "tools"
DOCKERLINTER = TOOLS / ".cache" / "dockerlinter" / "node_modules" / ".bin" / "dockerlinter"
BASE = "docker.io/library/debian:bookworm-slim"
RUN_ID = f"{os.getpid()}-{int(time.time())}"
IMAGE = f"localhost/sigreload-test:{RUN_ID}"
NGINX = f"localhost/sigreload-test-nginx:{RUN_ID}"
MAX_SIZE = 10 * 1000 * 1000  # bytes; the static binary is about 4.8 MB
PODMAN_TIMEOUT = 600

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
    """The project's image, tagged for this run only; removed at the end (the build stage's
    layers stay in podman's store as build cache)."""
    build(request, IMAGE, ROOT, ROOT / "Dockerfile", f"the image {IMAGE}")
    try:
        yield IMAGE
    finally:
        podman("rmi", "--force", IMAGE, check=False)


@pytest.fixture(scope="module")
def inspected(image):
    return json.loads(podman("image", "inspect", image).stdout)[0]


@pytest.fixture(scope="module")
def mounted(image):
    """The image's root filesystem, mounted read-only on the host."""
    path = Path(podman("image", "mount", image).stdout.strip())
    try:
        yield path
    finally:
        podman("image", "unmount", image, check=False)


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
    for key in ("title", "description", "source", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"no label {key}"
    size = inspected["Size"]
    report(request, f"image size {size} bytes ({size / 1e6:.2f} MB)")
    assert size < MAX_SIZE


def _has_interpreter(path):
    """Whether an ELF64 executable asks for a dynamic loader (a PT_INTERP program header)."""
    data = path.read_bytes()
    assert data[:5] == b"\x7fELF\x02", f"{path} is not an ELF64 file"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def test_image_holds_the_static_binary_alone_with_its_file_capability(mounted):
    files = sorted(str(p.relative_to(mounted)) for p in mounted.rglob("*") if not p.is_dir())
    assert files == ["usr/local/bin/sigreload"]
    binary = mounted / "usr/local/bin/sigreload"
    st = binary.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o755)
    assert not _has_interpreter(binary), "the binary is dynamically linked"
    getcap = subprocess.run(["getcap", binary], capture_output=True, text=True, check=True)
    assert getcap.stdout.split()[-1:] == ["cap_kill=p"], getcap.stdout  # permitted, not +ep


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


# ---- a pod: nginx and the sidecar, shareProcessNamespace --------------------------------------------

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


def pod_yaml(name, image, nginx, confdir, web_port, metrics_port):
    """A Pod as the chart renders it (killCapability mode), the rule file in a ConfigMap."""
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {name}-rules
        data:
          sigreload.yaml: |
            debounce: 50ms
            rules:
              - name: nginx
                paths: [/etc/nginx/conf.d]
                match: {{comm: nginx}}
                signal: SIGHUP
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: {name}
        spec:
          shareProcessNamespace: true
          containers:
            - name: nginx
              image: {nginx}
              command: [nginx, -g, "daemon off; error_log stderr notice;"]
              ports:
                - {{containerPort: 8080, hostPort: {web_port}}}
              volumeMounts:
                - {{name: conf, mountPath: /etc/nginx/conf.d, readOnly: true}}
            - name: sigreload
              image: {image}
              args: [run, --log-level, debug]
              ports:
                - {{containerPort: 9533, hostPort: {metrics_port}}}
              securityContext:
                runAsNonRoot: true
                runAsUser: {NONROOT}
                runAsGroup: {NONROOT}
                allowPrivilegeEscalation: false
                readOnlyRootFilesystem: true
                capabilities:
                  drop: [ALL]
                  add: [KILL]
                seccompProfile:
                  type: RuntimeDefault
              volumeMounts:
                - {{name: conf, mountPath: /etc/nginx/conf.d, readOnly: true}}
                - {{name: rules, mountPath: /etc/sigreload, readOnly: true}}
          volumes:
            - name: conf
              hostPath: {{path: {confdir}, type: Directory}}
            - name: rules
              configMap: {{name: {name}-rules}}
        """)


class KubePod:
    """`podman kube play` of a YAML file; `podman kube down` at close."""

    def __init__(self, name, yaml_path):
        self.name, self.yaml, self.followers = name, yaml_path, []
        podman("kube", "play", yaml_path, timeout=PODMAN_TIMEOUT)

    def follow(self, container):
        """`podman logs -f` of a container: its stdout and stderr as Streams, for handshakes."""
        proc = start(["podman", "logs", "--follow", f"{self.name}-{container}"])
        self.followers.append(proc)
        return proc

    def host_pid(self, container):
        return int(podman("inspect", "--format", "{{.State.Pid}}",
                          f"{self.name}-{container}").stdout)

    def close(self):
        podman("kube", "down", self.yaml, check=False)
        podman("pod", "rm", "--force", "--ignore", self.name, check=False)
        for proc in self.followers:
            proc.close()


def nspid(host_pid):
    """The pid as the process's own (the pod's) PID namespace numbers it."""
    with open(f"/proc/{host_pid}/status") as f:
        return int(next(line for line in f if line.startswith("NSpid:")).split()[-1])


def test_pod_reloads_nginx_after_a_configmap_update(request, image, nginx_image, workdir):
    os.chmod(workdir, 0o755)
    vol = AtomicVolume(workdir / "conf.d")
    vol.write({"default.conf": site("v1")})
    web, metrics = free_port(), free_port()
    name = f"sigreload-test-{RUN_ID}"
    yaml_path = workdir / "pod.yaml"
    yaml_path.write_text(pod_yaml(name, image, nginx_image, vol.root, web, metrics))

    t0 = time.monotonic()
    kp = KubePod(name, yaml_path)
    try:
        log = Log(kp.follow("sigreload").err)  # sigreload logs to stderr
        nginx = kp.follow("nginx").err
        log.expect("CAP_KILL: can signal processes of any uid", uid=NONROOT, timeout=30)
        log.expect("watching", rule="nginx")
        wait_for(web, "v1\n")
        assert http_get(metrics, "/readyz")[0] == 200
        master_host = kp.host_pid("nginx")
        master = nspid(master_host)
        report(request, f"pod up in {time.monotonic() - t0:.1f}s")

        vol.write({"default.conf": site("v2")})  # the kubelet's atomic update
        ev = log.expect("signaled", rule="nginx", signal="SIGHUP")
        assert int(ev["pid"]) == master  # the master, never a worker
        sidecar = nspid(kp.host_pid("sigreload"))
        nginx.expect(rf"signal 1 \(SIGHUP\) received from {sidecar}, reconfiguring")
        wait_for(web, "v2\n")
        log.expect("reloaded", rule="nginx", targets=1)
        assert kp.host_pid("nginx") == master_host  # reloaded in place, not restarted
        assert log.count("signaled") == 1
        _, text = http_get(metrics, "/metrics")
        assert 'sigreload_signals_sent_total{rule="nginx",signal="SIGHUP"} 1' in text
        # a file-capable binary is not dumpable (its /proc/PID is root's): its own /proc/self/fd
        # must still be readable for the process_* metrics
        fds = [line for line in text.splitlines() if line.startswith("process_open_fds ")]
        assert fds and int(fds[0].split()[1]) > 0, fds
    finally:
        kp.close()
    assert podman("pod", "exists", name, check=False).returncode != 0
