"""What the hardening tests (test_faults, test_pid_reuse, test_soak, test_valgrind) share:
rule-file builders, sigreload's HTTP endpoint, /proc figures, sysctls restored whatever happens,
and the C helpers they start (tests/helpers/)."""

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from conftest import TIMEOUT, Helper, escaped, helper, rule, rules, settle  # noqa: F401 (re-exported)
from conftest import http_get as get
from conftest import serving_address as address  # noqa: F401 (re-exported)

SANITIZED = os.environ.get("SIGRELOAD_SANITIZED") == "1"  # make asan: slower, more memory


def expect_reload(r, target, rule_name, content, timeout=TIMEOUT):
    """The target's next signal carries content, and sigreload says the reload succeeded."""
    pid, role, sig, seen = target.expect_signal(timeout)
    assert (pid, role, seen) == (target.pid, "master", escaped(content))
    r.log.expect("reloaded", rule=rule_name, timeout=timeout)
    return sig


# ---- sigreload's HTTP endpoint -------------------------------------------------------------

def healthz_latency(r, timeout=TIMEOUT):
    """Seconds GET /healthz takes: the event loop's responsiveness as a client sees it."""
    start = time.monotonic()
    status, _ = get(address(r), "/healthz", timeout=timeout)
    assert status == 200
    return time.monotonic() - start


# ---- /proc figures ---------------------------------------------------------------------------

def proc_status(pid):
    """/proc/PID/status as {key: value}."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def kib(pid, key):
    return int(proc_status(pid)[key].split()[0])


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(pred, timeout=TIMEOUT, what="the condition", interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)


@contextmanager
def sysctl(name, value):
    """Sets /proc/sys/NAME (dots or slashes) for the block, and restores it whatever happens."""
    path = Path("/proc/sys") / name.replace(".", "/")
    saved = path.read_text()
    try:
        path.write_text(f"{value}\n")
        yield saved.strip()
    finally:
        path.write_text(saved)


# ---- helpers under tests/helpers/ -----------------------------------------------------------

def host_pid_of(pod, nspid):
    """The host pid of the process the pod numbers nspid."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                text = f.read()
        except OSError:
            continue
        m = re.search(r"^NSpid:\s+(.*)$", text, re.M)
        if m and len(m.group(1).split()) >= 2 and int(m.group(1).split()[-1]) == nspid:
            # in the pod's namespace: its PID 1 is pod.init_pid
            ns = os.readlink(f"/proc/{entry}/ns/pid")
            if ns == os.readlink(f"/proc/{pod.init_pid}/ns/pid"):
                return int(entry)
    raise AssertionError(f"no process {nspid} in the pod")

