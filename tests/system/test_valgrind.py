"""sigreload under valgrind's memcheck: a representative session (kubelet updates, a touch, a
skipped FIFO and dangling link, a target without handler, a rule with no target, a held path,
/metrics and friends, a bad then a good rule file, SIGHUP, SIGTERM) with no memory error, no
byte definitely lost, and no fd left open at exit.

Valgrind 3.19 (Debian 12) does not implement pidfd_open (it answers ENOSYS), so this session also
runs sigreload's kill(2) fallback. An ASan build cannot run under valgrind: skipped under
`make asan`, which checks the same with LeakSanitizer.
"""

import glob
import os
import re
import shutil
import signal
import socket
from pathlib import Path

import pytest

from conftest import Reloader, Target
from hardening import SANITIZED, address, escaped, get, rule, rules, settle
from kubelet import AtomicVolume

SUPP = Path(__file__).with_name("valgrind.supp")
SLOW = 60  # valgrind runs sigreload some 20 to 50 times slower


def valgrind(workdir):
    exe = shutil.which("valgrind")
    assert exe, "valgrind is needed: apt-get install valgrind (make deps)"
    return [exe, "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=99",
            "--show-leak-kinds=definite,indirect", "--track-fds=yes", f"--suppressions={SUPP}",
            f"--log-file={workdir}/valgrind.%p.log"]


@pytest.mark.skipif(SANITIZED, reason="an ASan build does not run under valgrind")
def test_session_under_valgrind_has_no_error_no_leak_no_fd_left(pod, workdir):
    vol = AtomicVolume(workdir / "vol")
    vol.write({"app.conf": "v1\n", "b.conf": "b\n"})
    plain = workdir / "plain"
    plain.mkdir()
    (plain / "x.conf").write_text("x1\n")
    t = Target(pod, "--comm", "mydaemon", "--config", vol.root / "app.conf")
    Target(pod, "--comm", "starting", "--handler-after", "600000")
    settings = "debounce: 50ms\nmax_wait: 2s\nverify_after: 100ms\nhandler_wait: 5s\n"
    body = rules(rule("app", [vol.root, plain], "mydaemon"),
                 rule("nobody", [plain], "nobody"),
                 rule("nohandler", [plain], "starting", "handler_wait: 300ms"),
                 rule("later", [workdir / "later" / "l.conf"], "mydaemon"), settings=settings)
    r = Reloader(pod, workdir, body, prefix=valgrind(workdir))
    settle(r, "app")
    addr = address(r)

    for v in ("v2\n", "v3\n"):
        vol.write({"app.conf": v, "b.conf": "b\n"})
        assert t.expect_signal(SLOW)[3] == escaped(v)
        r.log.expect("reloaded", rule="app", timeout=SLOW)
    vol.write({"app.conf": "v3\n"})  # a key removed
    assert t.expect_signal(SLOW)[3] == escaped("v3\n")
    vol.write({"app.conf": "v3\n"}, force=True)  # identical swap
    r.log.expect("unchanged", rule="app", timeout=SLOW)
    os.mkfifo(plain / "fifo")
    os.symlink("nowhere", plain / "dangling")
    (plain / "x.conf").write_text("x2\n")
    r.log.expect("no target", rule="nobody", timeout=SLOW)
    r.log.expect("reload failed", rule="nohandler", reason="no_handler", timeout=SLOW)
    (workdir / "later").mkdir()
    (workdir / "later" / "l.conf").write_text("l\n")
    r.log.expect("path back", rule="later", timeout=SLOW)

    for path, status in (("/metrics", 200), ("/healthz", 200), ("/readyz", 200), ("/x", 404)):
        assert get(addr, path, timeout=SLOW)[0] == status
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=SLOW) as c:
        c.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert c.recv(100).startswith(b"HTTP/1.1 405")
    with socket.create_connection((host, int(port)), timeout=SLOW) as c:
        c.sendall(b"\x00\xffGARBAGE\r\n\r\n")
        c.recv(100)

    r.config.write_text(body + "  - name: [broken\n")
    r.log.expect("rule file not loaded", timeout=SLOW)
    r.config.write_text(body.replace("handler_wait: 300ms", "handler_wait: 200ms"))
    r.log.expect("rules reloaded", kept=4, timeout=SLOW)
    r.proc.send(signal.SIGHUP)
    r.log.expect("rules reloaded", why="SIGHUP", timeout=SLOW)

    code = r.proc.stop(timeout=SLOW)
    logs = glob.glob(f"{workdir}/valgrind.*.log")
    assert len(logs) == 1, logs
    report = Path(logs[0]).read_text()
    summary = "\n".join(line for line in report.splitlines()
                        if re.search(r"ERROR SUMMARY|definitely lost|indirectly lost|in use at "
                                     r"exit|FILE DESCRIPTORS|All heap blocks", line))
    print("\n" + summary)
    assert code == 0, f"valgrind exit {code}:\n{report[-4000:]}"
    assert re.search(r"ERROR SUMMARY: 0 errors", report), report[-4000:]
    assert "definitely lost: 0 bytes" in report or "All heap blocks were freed" in report
    # at exit only what sigreload was given (stdin, stdout, stderr) and valgrind's own log:
    # every fd sigreload opened is closed
    assert re.search(r"FILE DESCRIPTORS: \d+ open \(3 std\) at exit", report)
    left = [m.group(2) for m in re.finditer(r"Open (file descriptor|AF_\w+ socket) (\d+): ?(.*)",
                                            report) if m.group(3) != logs[0]]
    assert left == [], report[report.find("FILE DESCRIPTORS"):][:2000]
