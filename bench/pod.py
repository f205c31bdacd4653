"""A benchmark "pod": a fresh PID namespace whose PID 1 is the pause helper, as in
tests/system/conftest.py (whose Pod this mirrors; that module needs pytest, the benchmark only
the standard library). Processes join the pod the way containers with shareProcessNamespace do:
their parent is outside (the harness). Every process is ended by its pid; killing the pod's
PID 1 ends everything in it.
"""

import ctypes
import os
import signal
import subprocess
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd, nstype):
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def read_line(fd, timeout=10.0):
    """One line from a blocking fd, read byte by byte so that nothing after it is consumed."""
    deadline = time.monotonic() + timeout
    out = b""
    import select
    while not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no line within {timeout}s (got {out!r})")
        b = os.read(fd, 1)
        if not b:
            raise EOFError(f"end of stream (got {out!r})")
        out += b
    return out.decode().rstrip("\n")


def host_children(ppid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            out.append(int(entry))
    return out


class Pod:
    """A PID namespace with the pause helper as PID 1, like a pod with shareProcessNamespace."""

    def __init__(self, pause):
        self.procs = []
        self.unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", pause],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = read_line(self.unshare.stdout.fileno())
        if line != "ready 1":
            raise RuntimeError(f"pause said {line!r}")
        kids = host_children(self.unshare.pid)
        if len(kids) != 1:
            raise RuntimeError(f"unshare has children {kids}")
        self.init_pid = kids[0]

    def spawn(self, argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
              stderr=subprocess.DEVNULL, pass_fds=(), env=None):
        """Starts argv inside the pod: its PID namespace and its mount namespace (its /proc)."""
        mnt = os.open(f"/proc/{self.init_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        pidns = os.open(f"/proc/{self.init_pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        mine = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(pidns, CLONE_NEWPID)  # only children move: the harness stays where it is
            try:
                p = subprocess.Popen([str(a) for a in argv], stdin=stdin, stdout=stdout,
                                     stderr=stderr, pass_fds=pass_fds, env=env,
                                     preexec_fn=lambda: _setns(mnt, CLONE_NEWNS))
            finally:
                _setns(mine, CLONE_NEWPID)
        finally:
            for fd in (mnt, pidns, mine):
                os.close(fd)
        self.procs.append(p)
        return p

    def output(self, argv, timeout=120):
        """Runs argv in the pod to completion; returns its stdout."""
        p = self.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
        if p.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {p.returncode}: {err.decode()[-500:]}")
        return out.decode()

    def last_pid(self):
        """The last pid the pod handed out; reading it costs one (the reader's)."""
        return int(self.output(["cat", "/proc/sys/kernel/ns_last_pid"]))

    @staticmethod
    def nspid(host_pid):
        with open(f"/proc/{host_pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
        raise RuntimeError("no NSpid")

    def close(self):
        try:
            os.kill(self.init_pid, signal.SIGKILL)  # the kernel ends every process in the pod
        except ProcessLookupError:
            pass
        # Reap ours first: the dying PID 1 waits until every process of the namespace is
        # reaped, ours included, and unshare waits for it.
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for f in (p.stdout, p.stderr, p.stdin):
                if f:
                    f.close()
        try:
            self.unshare.wait(30)
        except subprocess.TimeoutExpired:
            self.unshare.kill()
            self.unshare.wait()
        self.unshare.stdout.close()
