"""The security modes of the chart (docs/SECURITY-MODES.md), proven on the real kernel.

sigreload runs under the credentials a Kubernetes runtime (containerd, CRI-O, through runc) gives
a non-root container, reproduced by the `creds` helper: bounding set = the added capabilities only,
permitted = effective = the same, inheritable and ambient empty, and no_new_privs for
`allowPrivilegeEscalation: false`. Unlike podman or `setpriv --ambient-caps`, these credentials
take an added capability away from a plain binary at execve; only a file capability keeps it.
The binary with a file capability is a copy of the real one given `cap_kill+p`, as the image's is.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import BIN, Log, Target, helper
from kubelet import AtomicVolume

CREDS = helper("creds")
NONROOT = 65532  # the image's USER and the chart's default runAsUser
CAP_KILL = 1 << 5
SETTINGS = 'debounce: 50ms\nmax_wait: 2s\nverify_after: 100ms\nhandler_wait: 5s\nmetrics_listen: ""\n'
EPERM_HINT = (f"target uid 0 differs from ours ({NONROOT}): run as uid 0, "
              "or add capability KILL")


@pytest.fixture(autouse=True, scope="module")
def tools():
    for tool in ("setcap", "getcap"):
        assert shutil.which(tool), f"{tool} is missing: run 'make deps' (libcap2-bin)"
    assert os.access(CREDS, os.X_OK), f"{CREDS} is missing: run 'make helpers'"
    assert os.geteuid() == 0, "these tests set uids and file capabilities: run them as root"


def creds(caps, nnp=True, uid=NONROOT):
    """The creds launcher's argv prefix: runAsUser uid, capabilities {drop: [ALL], add: caps}."""
    argv = [CREDS, "--uid", str(uid), "--gid", str(uid), "--caps", caps]
    return argv + (["--no-new-privs"] if nnp else []) + ["--"]


def file_capable(workdir, caps):
    """A copy of sigreload carrying the file capability `caps` (setcap's syntax)."""
    path = workdir / f"sigreload-{re.sub(r'[^a-z]+', '-', caps)}"
    shutil.copy(BIN, path)
    os.chmod(path, 0o755)
    subprocess.run(["setcap", caps, path], check=True)
    got = subprocess.run(["getcap", path], capture_output=True, text=True, check=True).stdout
    assert caps.replace("+", "=") in got, f"setcap {caps} did not stick on {path}: {got!r}"
    return path


def status(pid):
    """{key: value} of /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def rule(name, path, comm):
    return f"  - name: {name}\n    paths: [{path}]\n    match: {{comm: {comm}}}\n"


class Sidecar:
    """`sigreload run` in the pod under the given credentials (argv prefix), from `binary`.
    Like conftest's Reloader, the pod stops it with SIGTERM and expects exit status 0."""

    def __init__(self, pod, workdir, binary, prefix, *rules):
        self.config = workdir / "sigreload.yaml"
        self.config.write_text(SETTINGS + "rules:\n" + "".join(rules))
        self.proc = pod.spawn([*prefix, binary, "run", "-c", self.config, "--log-level", "debug"])
        self.log = Log(self.proc.err)
        pod.reloaders.append(self)
        self.log.expect("watches armed")
        self.proc.err.pos = 0  # start-up lines stay visible to expect()

    def credentials(self):
        s = status(self.proc.pid)
        return {"uid": s["Uid"].split()[0], "eff": int(s["CapEff"], 16),
                "amb": int(s["CapAmb"], 16), "bnd": int(s["CapBnd"], 16),
                "nnp": s["NoNewPrivs"]}


@pytest.fixture
def world(workdir):
    """A workdir the non-root uid can read, with a kubelet-written volume holding app.conf."""
    os.chmod(workdir, 0o755)
    vol = AtomicVolume(workdir / "vol")
    vol.write({"app.conf": "v1\n"})
    return workdir, vol


# ---- the launcher itself ------------------------------------------------------------------

@pytest.mark.parametrize("caps,want", [("kill", CAP_KILL), ("none", 0)])
def test_creds_gives_runc_credentials(caps, want):
    r = subprocess.run([CREDS, "--uid", str(NONROOT), "--gid", str(NONROOT), "--caps", caps,
                        "--no-new-privs", "--show", "/bin/true"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    s = dict(line.split(":\t", 1) for line in r.stderr.splitlines())
    assert s["Uid"].split() == [str(NONROOT)] * 4 and s["Gid"].split() == [str(NONROOT)] * 4
    assert s["Groups"].strip() == ""
    assert {k: int(s[k], 16) for k in ("CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb")} == {
        "CapBnd": want, "CapPrm": want, "CapEff": want, "CapInh": 0, "CapAmb": 0}
    assert s["NoNewPrivs"].strip() == "1"


def test_creds_takes_an_added_capability_from_a_plain_binary():
    """The Kubernetes behaviour everything below rests on: no ambient capability, so a non-root
    binary without file capabilities has none after execve, even with KILL added."""
    r = subprocess.run([*creds("kill"), "/bin/grep", "^Cap", "/proc/self/status"],
                       capture_output=True, text=True, check=True)
    s = dict(line.split(":\t", 1) for line in r.stdout.splitlines())
    assert int(s["CapBnd"], 16) == CAP_KILL
    assert int(s["CapPrm"], 16) == int(s["CapEff"], 16) == int(s["CapAmb"], 16) == 0


# ---- sameUid: the target's uid, no capability -----------------------------------------------

def test_same_uid_signals_without_any_capability(pod, world):
    workdir, vol = world
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf", prefix=creds("none"))
    assert status(t.proc.pid)["Uid"].split()[0] == str(NONROOT)
    r = Sidecar(pod, workdir, BIN, creds("none"), rule("app", vol.root, "mydaemon"))
    r.log.expect("no CAP_KILL: can signal only processes of our own uid", uid=NONROOT)
    r.log.expect("watching", rule="app")
    assert r.credentials() == {"uid": str(NONROOT), "eff": 0, "amb": 0, "bnd": 0, "nnp": "1"}

    vol.write({"app.conf": "v2\n"})
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", "v2\\n")
    r.log.expect("reloaded", rule="app")


# ---- killCapability: another uid, CAP_KILL through the file capability ------------------------

def test_kill_capability_signals_a_root_target_through_the_file_capability(pod, world):
    workdir, vol = world
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")  # root, like nginx
    binary = file_capable(workdir, "cap_kill+p")
    r = Sidecar(pod, workdir, binary, creds("kill"), rule("app", vol.root, "mydaemon"))
    r.log.expect("CAP_KILL: can signal processes of any uid", uid=NONROOT)
    r.log.expect("watching", rule="app")
    # what it ran with: KILL effective (raised by sigreload itself), nothing ambient, no_new_privs
    assert r.credentials() == {"uid": str(NONROOT), "eff": CAP_KILL, "amb": 0, "bnd": CAP_KILL,
                               "nnp": "1"}

    vol.write({"app.conf": "v2\n"})
    assert t.expect_signal() == (t.pid, "master", "SIGHUP", "v2\\n")
    r.log.expect("reloaded", rule="app")
    assert r.log.count("signal failed") == 0


def test_kill_capability_is_lost_by_a_binary_without_the_file_capability(pod, world):
    """The same credentials and the plain binary: KILL is gone at execve (why the image sets
    cap_kill+p), and the EPERM says what to do."""
    workdir, vol = world
    t = Target(pod, "--comm", "mydaemon")
    r = Sidecar(pod, workdir, BIN, creds("kill"), rule("app", vol.root, "mydaemon"))
    r.log.expect("no CAP_KILL: can signal only processes of our own uid", uid=NONROOT)
    r.log.expect("watching", rule="app")
    assert r.credentials()["eff"] == 0

    vol.write({"app.conf": "v2\n"})
    ev = r.log.expect("signal failed", rule="app", reason="eperm", pid=t.pid)
    assert ev["err"] == EPERM_HINT
    r.log.expect("idle")
    assert t.settled(r) == []


# ---- all dropped: the same file-capable binary, KILL not in the bounding set ---------------------

def test_all_dropped_starts_and_signals_only_its_own_uid(pod, world):
    workdir, vol = world
    mine = Target(pod, "--comm", "mine", "--config", vol.root / "app.conf", prefix=creds("none"))
    root = Target(pod, "--comm", "rootd")
    binary = file_capable(workdir, "cap_kill+p")
    r = Sidecar(pod, workdir, binary, creds("none"),
                rule("mine", vol.root, "mine"), rule("root", vol.root, "rootd"))
    r.log.expect("no CAP_KILL: can signal only processes of our own uid", uid=NONROOT)
    assert r.credentials() == {"uid": str(NONROOT), "eff": 0, "amb": 0, "bnd": 0, "nnp": "1"}
    r.log.expect("watching", rule="mine")
    r.log.expect("watching", rule="root")

    vol.write({"app.conf": "v2\n"})
    assert mine.expect_signal() == (mine.pid, "master", "SIGHUP", "v2\\n")
    ev = r.log.expect("signal failed", rule="root", reason="eperm", pid=root.pid)
    assert ev["err"] == EPERM_HINT
    r.log.expect("reload failed", rule="root")
    r.log.expect("idle")
    assert root.settled(r) == []


# ---- why +p and not +ep -------------------------------------------------------------------

@pytest.mark.parametrize("filecap,caps,starts", [
    ("cap_kill+ep", "none", False),  # drop: [ALL]: the kernel refuses the execve
    ("cap_kill+ep", "kill", True),
    ("cap_kill+p", "none", True),    # the image's choice starts in both modes
    ("cap_kill+p", "kill", True),
])
def test_effective_file_capability_fails_execve_without_kill_in_the_bounding_set(
        workdir, filecap, caps, starts):
    os.chmod(workdir, 0o755)
    binary = file_capable(workdir, filecap)
    r = subprocess.run([*creds(caps), binary, "--version"], capture_output=True, text=True,
                       timeout=10)
    if starts:
        version = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout
        assert (r.returncode, r.stdout) == (0, version), r.stderr
    else:
        assert r.returncode == 127
        assert r.stderr.strip() == (f"creds: cannot execute {binary}: Operation not permitted "
                                    "(errno 1)")
