"""sigreload hash against sha256sum, on real trees: nested directories, symlinks, loops, a FIFO
that must never be opened, hidden files, ConfigMap volumes laid out as the kubelet does, odd
names, a missing path, and a 1 GiB sparse file hashed in constant memory."""

import ctypes
import hashlib
import itertools
import os
import re
import shutil
import subprocess
import time

from conftest import BIN, TIMEOUT

ZERO_GIB_SHA256 = "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"
_libc = ctypes.CDLL(None, use_errno=True)
IN_ACCESS, IN_OPEN, IN_CLOSE_NOWRITE = 0x1, 0x20, 0x10


def run(*args, cwd=None, timeout=TIMEOUT):
    return subprocess.run([BIN, *map(str, args)], cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)


def file_lines(out):
    """The per-file lines of hash's output (bytes, each with its newline)."""
    return [line for line in out.splitlines(keepends=True) if not line.startswith(b"#")]


def rule_digest(out, label=b"rule-digest"):
    found = re.findall(rb"^# " + label + rb" ([0-9a-f]{64})  ", out, re.M)
    assert len(found) == 1, out
    return found[0].decode()


def build_tree(root):
    """Files that must be hashed, with what must be reported, and what must be left out."""
    root.mkdir()
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".git").mkdir()
    for rel, content in {
        "a.conf": "alpha\n", "b b.conf": "with space\n", "back\\slash": "bs\n",
        "new\nline": "nl\n", "cr\rname": "cr\n", "tab\there": "tab\n",
        "sub/c.conf": "gamma\n", "sub/deeper/d.conf": "delta\n", "empty": "",
        ".hidden": "never\n", ".git/config": "never\n", "sub/.swp": "never\n",
    }.items():
        (root / rel).write_text(content)
    (root / "link-file").symlink_to("a.conf")
    (root / "link-dir").symlink_to("sub")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "sub" / "up").symlink_to("..")
    (root / "dangling").symlink_to("nowhere")
    os.mkfifo(root / "pipe")
    (root / "link-to-pipe").symlink_to("pipe")


HASHED = ["a.conf", "b b.conf", "back\\slash", "cr\rname", "empty", "link-dir/c.conf",
          "link-dir/deeper/d.conf", "link-file", "new\nline", "sub/c.conf", "sub/deeper/d.conf",
          "tab\there"]


def skipped(root):
    return sorted([
        f"sigreload: {root}/pipe: not a regular file (FIFO), skipping",
        f"sigreload: {root}/link-to-pipe: not a regular file (FIFO), skipping",
        f"sigreload: {root}/dangling: dangling symlink, skipping",
        f"sigreload: {root}/loop1: symlink loop, skipping",
        f"sigreload: {root}/loop2: symlink loop, skipping",
        f"sigreload: {root}/sub/up: directory loop (a symlink to one of its parents), skipping",
        f"sigreload: {root}/link-dir/up: directory loop (a symlink to one of its parents), "
        "skipping",
    ])


def sha256sum(paths, cwd=None):
    r = subprocess.run(["sha256sum", "--", *paths], cwd=cwd, capture_output=True,
                       timeout=TIMEOUT, check=True)
    return r.stdout


class FifoWatch:
    """An inotify watch on a FIFO: tells whether anything opened it (watching does not)."""

    def __init__(self, path):
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path),
                                     IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE)
        assert wd >= 0, os.strerror(ctypes.get_errno())

    def opened(self):
        try:
            return len(os.read(self.fd, 4096)) > 0
        except BlockingIOError:
            return False

    def close(self):
        os.close(self.fd)


def test_tree_matches_sha256sum(workdir):
    root = workdir / "tree"
    build_tree(root)
    watch = FifoWatch(root / "pipe")
    try:
        r = run("hash", root, timeout=5)  # a FIFO opened to read would block here
        assert not watch.opened(), "sigreload opened the FIFO"
        # the watch works: an open is seen
        fd = os.open(root / "pipe", os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
        assert watch.opened()
    finally:
        watch.close()
    assert r.returncode == 0, r.stderr
    want = sha256sum(sorted((f"{root}/{rel}" for rel in HASHED), key=os.fsencode))
    assert file_lines(r.stdout) == want.splitlines(keepends=True)
    assert sorted(r.stderr.decode().splitlines()) == skipped(root)
    # no hidden name, and nothing reached twice through a loop
    assert b"/." not in b"".join(file_lines(r.stdout))
    assert len(file_lines(r.stdout)) == len(HASHED)


def test_output_passes_sha256sum_check(workdir):
    root = workdir / "tree"
    build_tree(root)
    r = run("hash", root)
    sums = workdir / "sums"
    sums.write_bytes(r.stdout)
    for strict in ([], ["--strict"]):
        c = subprocess.run(["sha256sum", "-c", *strict, sums], capture_output=True,
                           timeout=TIMEOUT)
        assert c.returncode == 0, c.stdout + c.stderr
        assert c.stdout.count(b": OK\n") == len(HASHED)
    # and a changed file fails the check: the lines really are checked
    (root / "sub" / "c.conf").write_text("changed\n")
    c = subprocess.run(["sha256sum", "-c", "--strict", sums], capture_output=True,
                       timeout=TIMEOUT)
    assert c.returncode == 1
    assert c.stdout.count(b": FAILED\n") == 2  # sub/c.conf and link-dir/c.conf


def test_rule_digest_is_sha256_of_the_lines(workdir):
    root = workdir / "tree"
    build_tree(root)
    r = run("hash", root)
    assert rule_digest(r.stdout) == hashlib.sha256(b"".join(file_lines(r.stdout))).hexdigest()
    assert r.stdout.endswith(f"  {root}\n".encode())


def test_single_file_and_fifo_path(workdir):
    f = workdir / "file"
    f.write_text("content\n")
    r = run("hash", f)
    assert r.returncode == 0
    assert file_lines(r.stdout) == [sha256sum([str(f)])]
    fifo = workdir / "pipe"
    os.mkfifo(fifo)
    r = run("hash", fifo, timeout=5)
    # as a path of its own, a FIFO is an error (a rule would be held), never opened
    assert r.returncode == 1
    assert r.stdout == b""
    assert r.stderr.decode() == f"sigreload: {fifo}: not a regular file (FIFO)\n"


def test_missing_path(workdir):
    missing = workdir / "missing"
    r = run("hash", missing)
    assert r.returncode == 1
    assert r.stdout == b""
    assert r.stderr.decode() == f"sigreload: {missing}: No such file or directory\n"
    dangling = workdir / "dangling"
    dangling.symlink_to("nowhere")
    r = run("hash", dangling)
    assert r.returncode == 1
    assert r.stderr.decode() == f"sigreload: {dangling}: No such file or directory\n"


def test_missing_path_among_others(workdir):
    f = workdir / "file"
    f.write_text("x")
    r = run("hash", f, workdir / "missing")
    assert r.returncode == 1
    assert file_lines(r.stdout) == [sha256sum([str(f)])]  # the others are still printed
    assert b"rule-digest-all" not in r.stdout


def test_several_paths(workdir):
    (workdir / "d").mkdir()
    (workdir / "d" / "x").write_text("x")
    (workdir / "y").write_text("y")
    r = run("hash", "d", "y", "d/x", cwd=workdir)
    assert r.returncode == 0
    lines = file_lines(r.stdout)
    assert lines == sha256sum(["d/x", "y", "d/x"], cwd=workdir).splitlines(keepends=True)
    assert re.findall(rb"^# rule-digest [0-9a-f]{64}  (.*)$", r.stdout, re.M) == [
        b"d", b"y", b"d/x"]
    # over every path: sorted, each file once
    once = sha256sum(["d/x", "y"], cwd=workdir)
    assert rule_digest(r.stdout, b"rule-digest-all") == hashlib.sha256(once).hexdigest()
    assert r.stdout.endswith(b"  (all paths above)\n")


_ts_counter = itertools.count(1)


def kubelet_write(vol, data):
    """Writes data {key: bytes} into vol as the kubelet's AtomicWriter does (REFERENCE.md §1):
    a new ..TIMESTAMP directory, ..data_tmp renamed over ..data, top-level links for new keys,
    removed keys unlinked, the old directory removed."""
    vol.mkdir(exist_ok=True)
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
    new = vol / f"..{stamp}.{next(_ts_counter) * 7919 % 10**10}"
    new.mkdir(mode=0o700)
    new.chmod(0o755)
    for key, content in data.items():
        f = new / key
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content)
        f.chmod(0o644)
    old = os.readlink(vol / "..data") if (vol / "..data").is_symlink() else None
    (vol / "..data_tmp").symlink_to(new.name)
    os.rename(vol / "..data_tmp", vol / "..data")
    tops = {key.split("/")[0] for key in data}
    for top in sorted(tops):
        if not (vol / top).is_symlink():
            (vol / top).symlink_to(f"..data/{top}")
    for entry in os.listdir(vol):
        if not entry.startswith("..") and entry not in tops:
            (vol / entry).unlink()
    if old:
        shutil.rmtree(vol / old)


def plain_write(vol, data):
    """The same data as an ordinary directory (hostPath, emptyDir)."""
    if vol.exists():
        shutil.rmtree(vol)
    for key, content in data.items():
        (vol / key).parent.mkdir(parents=True, exist_ok=True)
        (vol / key).write_bytes(content)


DATA = {"nginx.conf": b"worker_processes 2;\n", "conf.d/app.conf": b"server { listen 80; }\n",
        "tls.key": b"-----BEGIN KEY-----\n"}


def digest_of(workdir, vol_parent):
    """hash of "vol" run from its parent, so that two trees name their files the same."""
    r = run("hash", "vol", cwd=workdir / vol_parent)
    assert r.returncode == 0, r.stderr
    return r


def test_configmap_layout(workdir):
    (workdir / "cm").mkdir()
    vol = workdir / "cm" / "vol"
    kubelet_write(vol, DATA)
    stamp = os.readlink(vol / "..data")  # ..YYYY_MM_DD_HH_MM_SS.N, N of 1 to 10 digits
    assert re.fullmatch(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{1,10}", stamp), stamp
    r = digest_of(workdir, "cm")
    lines = file_lines(r.stdout)
    assert lines == sha256sum(["vol/conf.d/app.conf", "vol/nginx.conf", "vol/tls.key"],
                              cwd=workdir / "cm").splitlines(keepends=True)
    assert b"/.." not in r.stdout  # never the ..data or ..TIMESTAMP names
    assert r.stderr == b""


def test_rule_digest_compares_content_and_names(workdir):
    for d in ("plain", "cm"):
        (workdir / d).mkdir()
    plain_write(workdir / "plain" / "vol", DATA)
    kubelet_write(workdir / "cm" / "vol", DATA)
    base = rule_digest(digest_of(workdir, "plain").stdout)
    assert rule_digest(digest_of(workdir, "cm").stdout) == base  # same keys, same content

    def after(data):
        kubelet_write(workdir / "cm" / "vol", data)
        return rule_digest(digest_of(workdir, "cm").stdout)

    # an update to identical data: a new ..TIMESTAMP, same digest
    assert after(DATA) == base
    # touching a key, or rewriting the same bytes in place, changes nothing
    key = (workdir / "cm" / "vol" / "nginx.conf").resolve()
    os.utime(key, (0, 0))
    assert rule_digest(digest_of(workdir, "cm").stdout) == base
    key.write_bytes(DATA["nginx.conf"])
    assert rule_digest(digest_of(workdir, "cm").stdout) == base
    # but every change to a key does
    changed = {
        "content": {**DATA, "tls.key": b"-----BEGIN OTHER KEY-----\n"},
        "renamed": {("nginx.main.conf" if k == "nginx.conf" else k): v for k, v in DATA.items()},
        "added": {**DATA, "extra.conf": b""},
        "removed": {k: v for k, v in DATA.items() if k != "tls.key"},
        "moved into a sub-directory": {("conf.d/nginx.conf" if k == "nginx.conf" else k): v
                                       for k, v in DATA.items()},
    }
    seen = {base}
    for what, data in changed.items():
        digest = after(data)
        assert digest not in seen, f"a key {what}: the digest did not change"
        seen.add(digest)
        assert after(DATA) == base, f"back from a key {what}: not the first digest"


def test_names_with_odd_characters(workdir):
    root = workdir / "odd"
    root.mkdir()
    names = ["sp ace", "two  spaces", "back\\slash", "new\nline", "cr\rret", "\\\n\r",
             "caf\u00e9", "quote\"s", "star*", "dash-", "-leading", "#hash", "trailing "]
    for i, name in enumerate(names):
        (root / name).write_text(f"{i}\n")
    r = run("hash", root)
    assert r.returncode == 0
    want = sha256sum(sorted((f"{root}/{n}" for n in names), key=os.fsencode))
    assert file_lines(r.stdout) == want.splitlines(keepends=True)
    sums = workdir / "sums"
    sums.write_bytes(r.stdout)
    c = subprocess.run(["sha256sum", "-c", "--strict", sums], capture_output=True,
                       timeout=TIMEOUT)
    assert c.returncode == 0, c.stdout + c.stderr


def peak_rss_kib(*args):
    """Runs sigreload to completion; returns (exit code, stdout, peak RSS in KiB)."""
    p = subprocess.Popen([BIN, *map(str, args)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        return p.returncode, p.stdout.read(), usage.ru_maxrss
    finally:
        p.stdout.close()


def test_memory_does_not_grow_with_file_size(workdir):
    small, big = workdir / "small", workdir / "big"
    small.write_bytes(b"x" * 1024)
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # sparse: no disk used
    code, out, rss_small = peak_rss_kib("hash", small)
    assert code == 0
    code, out, rss_big = peak_rss_kib("hash", big)
    assert code == 0
    assert file_lines(out) == [f"{ZERO_GIB_SHA256}  {big}\n".encode()]
    # the read buffer is 128 KiB: allow it and a little more, nothing like the file's size
    assert rss_big - rss_small < 1024, f"peak RSS {rss_big} KiB for 1 GiB, {rss_small} for 1 KiB"
