"""System-test harness: the real binary, real processes, a real kernel.

A test "pod" is a fresh PID namespace (unshare --pid --fork --mount-proc) whose PID 1 is the
`pause` helper. Processes join it the way containers with shareProcessNamespace do: their parent
is outside (pytest), so they show PPID 0 inside. Every process is ended by its pid; ending the
namespace's PID 1 ends everything in it.
"""

import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SIGRELOAD_BIN", str(ROOT / "sigreload"))
HELPERS = Path(os.environ.get("SIGRELOAD_HELPERS", str(ROOT / "build" / "helpers")))
TIMEOUT = float(os.environ.get("SIGRELOAD_TEST_TIMEOUT", "10"))

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd, nstype):
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def helper(name):
    return str(HELPERS / name)


class Stream:
    """Lines of one pipe, read without blocking; expect() waits for a line with a deadline."""

    def __init__(self, f):
        self.f = f
        self.fd = f.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.lines = []
        self.pos = 0  # lines before pos were consumed by expect()
        self.eof = False

    def pump(self, timeout):
        if self.eof:
            return False
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return False
        if not data:
            self.eof = True
            if self.buf:
                self.lines.append(self.buf.decode(errors="replace"))
                self.buf = b""
            return False
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        self.lines.extend(line.decode(errors="replace") for line in done)
        return True

    def drain(self, quiet=0.0):
        """Reads whatever is there, waiting up to `quiet` seconds for more."""
        while self.pump(quiet):
            pass
        return self.lines

    def expect(self, pattern, timeout=TIMEOUT):
        """The first unconsumed line matching pattern (a regex); later lines stay unconsumed."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for i in range(self.pos, len(self.lines)):
                m = rx.search(self.lines[i])
                if m:
                    self.pos = i + 1
                    return m
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                tail = "\n".join(self.lines[-30:])
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout}s"
                    f"{' (stream closed)' if self.eof else ''}; last lines:\n{tail}"
                )
            self.pump(min(left, 0.5))

    def matching(self, pattern):
        self.drain()
        rx = re.compile(pattern)
        return [m for m in (rx.search(line) for line in self.lines) if m]


class Proc:
    """A started process with its stdout and stderr as Streams."""

    def __init__(self, popen, argv):
        self.p = popen
        self.argv = argv
        self.out = Stream(popen.stdout)
        self.err = Stream(popen.stderr)

    @property
    def pid(self):
        return self.p.pid

    @property
    def nspid(self):
        """The pid as the process's own (innermost) PID namespace numbers it."""
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
        raise AssertionError("no NSpid line")

    def send(self, sig):
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def wait(self, timeout=TIMEOUT):
        return self.p.wait(timeout)

    def stop(self, sig=signal.SIGTERM, timeout=TIMEOUT):
        self.send(sig)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError(f"{self.argv[0]} did not exit within {timeout}s of {sig!r}")

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.out.drain()
        self.err.drain()
        self.p.stdout.close()
        self.p.stderr.close()


def start(argv, preexec_fn=None, env=None, cwd=None):
    p = subprocess.Popen(
        [str(a) for a in argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec_fn,
        env=env,
        cwd=cwd,
    )
    return Proc(p, argv)


class Pod:
    """A PID namespace with the pause helper as PID 1, like a pod with shareProcessNamespace."""

    def __init__(self):
        self.procs = []
        self.reloaders = []  # every line they log must parse, whatever the test did
        self.unshare = start(["unshare", "--pid", "--fork", "--mount-proc", helper("pause")])
        self.unshare.out.expect(r"^ready 1$")
        self.init_pid = self._child_of(self.unshare.pid)

    @staticmethod
    def _child_of(ppid):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid:
                return int(entry)
        raise AssertionError(f"no child of {ppid}")

    def spawn(self, argv, env=None, cwd=None):
        """Starts argv inside the pod: its PID namespace and its mount namespace (its /proc)."""
        mnt = os.open(f"/proc/{self.init_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        pidns = os.open(f"/proc/{self.init_pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        mine = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(pidns, CLONE_NEWPID)  # only children are moved: pytest stays where it is
            try:
                proc = start(argv, preexec_fn=lambda: _setns(mnt, CLONE_NEWNS), env=env, cwd=cwd)
            finally:
                _setns(mine, CLONE_NEWPID)
        finally:
            for fd in (mnt, pidns, mine):
                os.close(fd)
        self.procs.append(proc)
        return proc

    def run(self, argv, timeout=TIMEOUT, env=None):
        """Runs argv in the pod to completion: (returncode, stdout, stderr)."""
        proc = self.spawn(argv, env=env)
        try:
            code = proc.wait(timeout)
        finally:
            proc.close()
        return code, "\n".join(proc.out.lines), "\n".join(proc.err.lines)

    def close(self):
        # every sigreload ends cleanly on SIGTERM: exit 0 (under ASan: no leak either)
        codes = [(r.proc.stop(), r) for r in self.reloaders if r.proc.p.poll() is None]
        try:
            os.kill(self.init_pid, signal.SIGKILL)  # the kernel ends every process in the pod
        except ProcessLookupError:
            pass
        self.unshare.close()
        for proc in self.procs:
            proc.close()
        for r in self.reloaders:
            for line in r.log.stream.lines:
                if line:
                    parse_log(line)  # raises on a line that is neither logfmt nor JSON
        for code, r in codes:
            assert code == 0, f"sigreload exited {code} on SIGTERM:\n" + "\n".join(r.log.stream.lines[-20:])


@pytest.fixture
def pod():
    p = Pod()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="sigreload-test-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sigreload(*args, timeout=TIMEOUT, env=None):
    """Runs the binary on the host to completion."""
    return subprocess.run(
        [BIN, *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


# ---- sigreload's logs ----------------------------------------------------------------------

_LOGFMT_PAIR = re.compile(r'([a-z_][a-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^ "=]*)(?: |$)')


def parse_logfmt(line):
    """A strict logfmt line parser: every byte must belong to a key=value pair. Quoted values
    use JSON escapes, as sigreload writes them."""
    fields, pos = {}, 0
    while pos < len(line):
        m = _LOGFMT_PAIR.match(line, pos)
        if not m:
            raise ValueError(f"not logfmt at column {pos}: {line!r}")
        key, value = m.group(1), m.group(2)
        if key in fields:
            raise ValueError(f"duplicate key {key!r}: {line!r}")
        fields[key] = json.loads(value) if value.startswith('"') else value
        pos = m.end()
    for key in ("ts", "level", "msg"):
        if key not in fields:
            raise ValueError(f"no {key}: {line!r}")
    return fields


def parse_log(line):
    return json.loads(line) if line.startswith("{") else parse_logfmt(line)


class Log:
    """sigreload's stderr as parsed events; expect() waits for one with given fields."""

    def __init__(self, stream):
        self.stream = stream

    def events(self):
        self.stream.drain()
        return [parse_log(line) for line in self.stream.lines if line]

    def expect(self, msg, timeout=TIMEOUT, **fields):
        """The next line whose msg is msg (or one of the tuple msg) with the given fields."""
        want = {k: str(v) for k, v in fields.items()}
        msgs = msg if isinstance(msg, tuple) else (msg,)

        def matches(line):
            try:
                ev = parse_log(line)
            except ValueError:
                return False
            return ev.get("msg") in msgs and all(str(ev.get(k)) == v for k, v in want.items())

        deadline = time.monotonic() + timeout
        s = self.stream
        while True:
            for i in range(s.pos, len(s.lines)):
                if matches(s.lines[i]):
                    s.pos = i + 1
                    return parse_log(s.lines[i])
            left = deadline - time.monotonic()
            if left <= 0 or s.eof:
                tail = "\n".join(s.lines[-40:])
                raise AssertionError(f"no log msg={msg!r} {want} within {timeout}s; last lines:\n{tail}")
            s.pump(min(left, 0.5))

    def count(self, msg, **fields):
        want = {k: str(v) for k, v in fields.items()}
        return sum(1 for ev in self.events()
                   if ev.get("msg") == msg and all(str(ev.get(k)) == v for k, v in want.items()))


class Reloader:
    """`sigreload run` in a pod, with its rule file in workdir."""

    def __init__(self, pod, workdir, rules, args=(), prefix=(), wait=True, binary=BIN):
        self.config = Path(workdir) / "sigreload.yaml"
        self.config.write_text(rules)
        if "--metrics-listen" not in args:
            args = [*args, "--metrics-listen", "127.0.0.1:0"]  # never the shared default port
        self.proc = pod.spawn([*prefix, binary, "run", "-c", self.config, "--log-level", "debug", *args])
        self.log = Log(self.proc.err)
        pod.reloaders.append(self)
        if wait:
            self.log.expect("watches armed")
            self.proc.err.pos = 0  # start-up lines stay visible to expect()

    def stop(self, sig=signal.SIGTERM):
        return self.proc.stop(sig)

    def metrics(self):
        """{'name{labels}': value} of one scrape of /metrics."""
        addr = next(e["address"] for e in self.log.events()
                    if e["msg"] == "serving /metrics, /healthz, /readyz")
        status, body = http_get(addr, "/metrics")
        assert status == 200, body
        return {k: float(v) for k, _, v in (line.rpartition(" ") for line in body.splitlines()
                                            if line and not line.startswith("#"))}

    def idle(self, timeout=TIMEOUT):
        """Waits for the next msg="idle": sigreload has acted on everything it was given up to
        the line expect() last returned (nothing pending, nothing in flight, no retry)."""
        return self.log.expect("idle", timeout=timeout)


class Helper:
    """A helper process in the pod that prints 'ready <pid>' and then one line per signal it
    receives: "signal <pid> <master|worker> <SIGNAME> <content>" (tests/helpers/target.c)."""

    SIGNAL = re.compile(r"^signal (\d+) (master|worker) (\S+) (.*)$")
    workers = ()  # the pids of the processes it forked that report too (Target's --workers)

    def __init__(self, pod, argv):
        self.proc = pod.spawn(argv)
        self.pid = int(self.proc.out.expect(r"^ready (\d+)$").group(1))  # as the pod numbers it

    def signals(self):
        """[(pid, role, signal, content)] received so far."""
        return [(int(m.group(1)), m.group(2), m.group(3), m.group(4))
                for m in self.proc.out.matching(self.SIGNAL.pattern)]

    def settled(self, r, timeout=TIMEOUT):
        """signals() once this helper has reported every signal the Reloader r logged sending
        to it (its pid or a worker's): after r.idle(), the final list, with no pause to wait
        for a straggler. (Two standard signals that arrive before the first is handled are one:
        only for deliveries a verify_after apart.)"""
        pids = {str(self.pid), *map(str, self.workers)}
        sent = sum(1 for ev in r.log.events() if ev["msg"] == "signaled" and ev.get("pid") in pids)
        deadline = time.monotonic() + timeout
        while len(got := self.signals()) < sent:
            left = deadline - time.monotonic()
            assert left > 0, (f"sigreload logged {sent} signals to {sorted(pids)}, "
                              f"which reported {len(got)} within {timeout}s: {got}")
            self.proc.out.pump(min(left, 0.5))
        return got

    def expect_signal(self, timeout=TIMEOUT):
        m = self.proc.out.expect(self.SIGNAL.pattern, timeout)
        return int(m.group(1)), m.group(2), m.group(3), m.group(4)


class Target(Helper):
    """The target helper, with its workers' pids."""

    def __init__(self, pod, *args, prefix=()):
        super().__init__(pod, [*prefix, helper("target"), *args])
        self.workers = []
        n = int(args[args.index("--workers") + 1]) if "--workers" in args else 0
        self.proc.out.pos = 0  # workers may report before their master
        for _ in range(n):
            self.workers.append(int(self.proc.out.expect(r"^worker (\d+)$").group(1)))


# ---- sigreload's HTTP endpoint ---------------------------------------------------------------

def http_get(addr, path, method="GET", source="127.0.0.1", timeout=TIMEOUT):
    """(status, body) of one request to addr ("host:port"); source picks the client's loopback
    address (the per-address connection limit is sigreload's, not the test's)."""
    host, port = addr.rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=timeout,
                                    source_address=(source, 0))
    with conn:
        conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def serving_address(r):
    """Where a Reloader serves /metrics, read from its log without consuming lines."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for ev in r.log.events():
            if ev.get("msg") == "serving /metrics, /healthz, /readyz":
                return ev["address"]
        r.log.stream.pump(0.05)
    raise AssertionError("sigreload does not say where it serves /metrics")


def metric(r, series):
    """The value of one series ('name{labels}') of a Reloader's /metrics now, or None."""
    status, body = http_get(serving_address(r), "/metrics")
    assert status == 200
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            if key == series:
                return float(value)
    return None


# ---- rule files and what targets print ------------------------------------------------------

# start_grace: 0: the targets a test starts are signaled at once, not once they are 2 s old
FAST = "debounce: 50ms\nmax_wait: 2s\nverify_after: 100ms\nhandler_wait: 5s\nstart_grace: 0\n"


def rules(*rules, settings=FAST):
    return settings + "rules:\n" + "".join(rules)


def rule(name, paths, comm, extra=""):
    lines = [f"  - name: {name}", "    paths:"]
    lines += [f"      - {p}" for p in paths]
    lines += ["    match:", f"      comm: {comm}"]
    lines += [f"    {line}" for line in extra.splitlines() if line]
    return "\n".join(lines) + "\n"


def escaped(content):
    """What the target helper prints for a file's content (tests/helpers/target.c)."""
    out = []
    for c in content.encode():
        if c == 0x0A:
            out.append("\\n")
        elif c < 0x21 or c >= 0x7F or c == 0x5C:
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
    return "".join(out)


def settle(r, name):
    """Waits for the rule's baseline: from here on, changes are measured against it."""
    r.log.expect("watching", rule=name)
