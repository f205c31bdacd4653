"""sigreload match in a pod (a PID namespace with pause as PID 1): leaders and workers, hostile
comm values, PID 1 and sigreload itself never listed, matching by comm, cmdline, exe and uid,
one rule or an unknown one, and the hint for a pod without shareProcessNamespace."""

import re
import subprocess
import time

import pytest

from conftest import BIN, TIMEOUT, helper, sigreload

HINT = ("sigreload: no process is visible here but sigreload itself: "
        "is shareProcessNamespace: true set on the pod?")
ROW = re.compile(r"^(?P<rule>\S+) +(?P<pid>\d+) +(?P<ppid>\d+) +(?P<uid>\S+) +"
                 r"(?P<signal>yes|no) +(?P<rss>[\d.]+[KMG]?|-) +(?P<cpu>[\d.]+|-) +"
                 r"(?P<threads>\d+|-) +(?P<fds>\d+|-) +(?P<age>[\d.]+[smhd]|-) +(?P<rest>.*)$")
UID = 65532


def unquote(text):
    """A cell as main.c prints it: bare, or in quotes with \\", \\\\ and \\xNN escapes.
    Returns (value, rest of the line)."""
    if not text.startswith('"'):
        value, _, rest = text.partition(" ")
        return value, rest
    out, i = [], 1
    while text[i] != '"':
        if text[i] == "\\":
            if text[i + 1] == "x":
                out.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(text[i + 1])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out), text[i + 1:]


def parse(stdout):
    """The table as (rule, pid, ppid, uid, signaled, comm, cmdline) tuples."""
    lines = stdout.splitlines()
    assert lines and lines[0].split() == ["RULE", "PID", "PPID", "UID", "SIGNAL", "RSS", "CPU",
                                          "THR", "FDS", "AGE", "COMM", "CMDLINE"], stdout
    rows = []
    for line in lines[1:]:
        m = ROW.match(line)
        assert m, f"not a row: {line!r}"
        comm, rest = unquote(m["rest"])
        rest = rest.lstrip(" ")
        cmdline = unquote(rest)[0] if rest.startswith('"') else rest  # the last cell: blanks kept
        rows.append((m["rule"], int(m["pid"]), int(m["ppid"]), m["uid"], m["signal"] == "yes",
                     comm, cmdline))
    return rows


def by_rule(rows, rule):
    return {pid: (ppid, uid, signaled, comm) for r, pid, ppid, uid, signaled, comm, _ in rows
            if r == rule}


def wait_lines(stream, pattern, count, timeout=TIMEOUT):
    """The first count lines matching pattern, in whatever order they came."""
    deadline = time.monotonic() + timeout
    while True:
        found = stream.matching(pattern)
        if len(found) >= count:
            return found[:count]
        if time.monotonic() > deadline or stream.eof:
            raise AssertionError(f"{len(found)} lines matching {pattern!r}, want {count}: "
                                 f"{stream.lines}")
        stream.pump(0.2)


def start_target(pod, *args, uid=None):
    """A target in the pod; returns its pid there (from its "ready PID" handshake)."""
    argv = [helper("target"), *args]
    if uid is not None:
        argv = ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups", *argv]
    proc = pod.spawn(argv)
    return int(proc.out.expect(r"^ready (\d+)$")[1]), proc


def rules_file(workdir, text):
    path = workdir / "rules.yaml"
    path.write_text("rules:\n" + text)
    return path


def match(pod, path, *rule):
    code, out, err = pod.run([BIN, "match", "-c", path, *rule])
    assert code == 0, err
    return parse(out), err


def test_leaders_and_workers(pod, workdir):
    master, proc = start_target(pod, "--comm", "web", "--workers", "2")
    workers = {int(m[1]) for m in wait_lines(proc.out, r"^worker (\d+)$", 2)}
    path = rules_file(workdir, """\
  - {name: leaders, paths: [/a], match: {comm: web}}
  - {name: everyone, paths: [/a], match: {comm: web}, leaders_only: false}
  - {name: by-cmdline, paths: [/a], match: {cmdline: '--workers 2$'}}
""")
    rows, err = match(pod, path)
    leaders = by_rule(rows, "leaders")
    assert set(leaders) == {master} | workers
    assert leaders[master] == (0, "0", True, "web")  # its parent is outside the pod
    for w in workers:
        assert leaders[w] == (master, "0", False, "web")
    assert {pid: s for pid, (_, _, s, _) in by_rule(rows, "everyone").items()} == {
        pid: True for pid in leaders}
    assert {pid: s for pid, (_, _, s, _) in by_rule(rows, "by-cmdline").items()} == {
        pid: pid == master for pid in leaders}
    assert "sigreload: rule leaders: 1 of 3 matching processes would get SIGHUP" in err
    assert "sigreload: rule everyone: 3 of 3 matching processes would get SIGHUP" in err
    assert HINT not in err


@pytest.mark.parametrize("comm,glob", [
    ("a) (b", "a) (b"), ("a) (b", "a) (*"), ("x) R 2 3", "x) R*"), ("sp ace", "sp?ace"),
    ("((", "[(][(]"), ("123456789012345", "1234*5"),
])
def test_hostile_comm(pod, workdir, comm, glob):
    pid, _ = start_target(pod, "--comm", comm)
    decoy, _ = start_target(pod, "--comm", "decoy")
    escaped = glob.replace("\\", "\\\\").replace('"', '\\"')
    path = rules_file(workdir, f'  - {{name: odd, paths: [/a], match: {{comm: "{escaped}"}}}}\n')
    rows, err = match(pod, path)
    assert by_rule(rows, "odd") == {pid: (0, "0", True, comm)}
    assert decoy not in by_rule(rows, "odd")
    assert "sigreload: rule odd: 1 of 1 matching process would get SIGHUP" in err


def test_comm_is_cut_to_15_bytes(pod, workdir):
    """The kernel keeps 15 bytes of comm: a longer name only matches by its first 15, and a
    pattern that needs more than 15 is refused rather than silently matching nothing."""
    pid, _ = start_target(pod, "--comm", "nginx-ingress-controller")
    path = rules_file(workdir, """\
  - {name: cut, paths: [/a], match: {comm: nginx-ingress-c}}
  - {name: glob, paths: [/a], match: {comm: "nginx-ingress-*"}}
""")
    rows, _ = match(pod, path)
    assert by_rule(rows, "cut") == {pid: (0, "0", True, "nginx-ingress-c")}
    assert by_rule(rows, "glob") == {pid: (0, "0", True, "nginx-ingress-c")}
    full = rules_file(workdir, """\
  - {name: full, paths: [/a], match: {comm: nginx-ingress-controller}}
""")
    r = sigreload("check", "-c", full)
    assert r.returncode == 2
    assert "can never match: the kernel keeps only the first 15 bytes" in r.stderr


def test_pid1_and_sigreload_never_listed(pod, workdir):
    pid, _ = start_target(pod, "--comm", "app")
    path = rules_file(workdir, """\
  - {name: pause, paths: [/a], match: {comm: pause}}
  - {name: self, paths: [/a], match: {comm: sigreload}}
  - {name: any, paths: [/a], match: {comm: "*"}, leaders_only: false}
  - {name: exe, paths: [/a], match: {exe: "*"}, leaders_only: false}
  - {name: cmd, paths: [/a], match: {cmdline: .}}
""")
    rows, err = match(pod, path)
    assert by_rule(rows, "pause") == {}
    assert by_rule(rows, "self") == {}
    for rule in ("any", "exe", "cmd"):
        assert set(by_rule(rows, rule)) == {pid}, rule  # not 1, not sigreload
    assert all(row[1] != 1 and row[5] not in ("pause", "sigreload") for row in rows)
    # pause and sigreload are not among the processes counted as visible either
    for rule in ("pause", "self"):
        assert re.search(rf"^sigreload: rule {rule} matches none of the 1 process(es)? visible "
                         "here$", err, re.M), err


def test_cmdline_regex(pod, workdir):
    a, _ = start_target(pod, "--comm", "app", "--config", "/etc/app/app.conf")
    b, _ = start_target(pod, "--comm", "app", "--config", "/etc/other.conf")
    path = rules_file(workdir, r"""
  - {name: conf, paths: [/a], match: {cmdline: '--config /etc/app/[a-z]+\.conf$'}}
  - {name: anchored, paths: [/a], match: {cmdline: '^[^ ]*/target --comm app( |$)'}}
  - {name: none, paths: [/a], match: {cmdline: '^target'}}
  - {name: both, paths: [/a], match: {comm: app, cmdline: 'other'}}
""".lstrip("\n"))
    rows, err = match(pod, path)
    assert set(by_rule(rows, "conf")) == {a}
    assert set(by_rule(rows, "anchored")) == {a, b}
    assert set(by_rule(rows, "none")) == set()  # argv[0] is the full path
    assert set(by_rule(rows, "both")) == {b}
    cmdlines = {pid: cmd for rule, pid, *_, cmd in rows if rule == "anchored"}
    assert cmdlines[a] == f"{helper('target')} --comm app --config /etc/app/app.conf"


def test_uid(pod, workdir):
    root_pid, _ = start_target(pod, "--comm", "app")
    other_pid, _ = start_target(pod, "--comm", "app", uid=UID)
    path = rules_file(workdir, f"""\
  - {{name: nonroot, paths: [/a], match: {{uid: {UID}}}}}
  - {{name: root-app, paths: [/a], match: {{comm: app, uid: 0}}}}
  - {{name: app, paths: [/a], match: {{comm: app}}}}
  - {{name: nobody, paths: [/a], match: {{comm: app, uid: 4242}}}}
""")
    rows, _ = match(pod, path)
    assert by_rule(rows, "nonroot") == {other_pid: (0, str(UID), True, "app")}
    assert set(by_rule(rows, "root-app")) == {root_pid}
    assert {pid: uid for pid, (_, uid, _, _) in by_rule(rows, "app").items()} == {
        root_pid: "0", other_pid: str(UID)}
    assert by_rule(rows, "nobody") == {}


def test_exe_glob(pod, workdir):
    pid, _ = start_target(pod, "--comm", "app")
    other, _ = start_target(pod, "--comm", "app", uid=UID)
    path = rules_file(workdir, f"""\
  - {{name: exact, paths: [/a], match: {{exe: "{helper('target')}"}}}}
  - {{name: glob, paths: [/a], match: {{exe: "*/helpers/t?rget"}}}}
  - {{name: elsewhere, paths: [/a], match: {{exe: "/usr/sbin/*"}}}}
""")
    rows, _ = match(pod, path)
    # run as root, sigreload reads every process's exe
    assert set(by_rule(rows, "exact")) == {pid, other}
    assert set(by_rule(rows, "glob")) == {pid, other}
    assert by_rule(rows, "elsewhere") == {}


def test_exe_of_another_uid_without_ptrace(pod, workdir):
    """Without CAP_SYS_PTRACE another uid's exe is unreadable: not a match, and said so."""
    pid, _ = start_target(pod, "--comm", "app")
    path = rules_file(workdir, '  - {name: exe, paths: [/a], match: {exe: "*"}}\n')
    path.parent.chmod(0o755)
    path.chmod(0o644)
    code, out, err = pod.run(["setpriv", "--reuid", str(UID), "--regid", str(UID),
                              "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                              BIN, "match", "-c", path])
    assert code == 0, err
    assert parse(out) == []
    assert ("sigreload: rule exe: the exe of 1 process is unreadable (another uid): "
            "match by comm or cmdline, or add capability SYS_PTRACE") in err
    assert pid > 1


def test_exe_is_read_only_where_the_other_keys_match(pod, workdir):
    """exe costs a readlink a process: it is read only for the processes the other keys let
    through, so another uid's process of another comm is neither read nor said unreadable."""
    start_target(pod, "--comm", "other")  # root's: its exe is unreadable to UID
    path = rules_file(workdir, '  - {name: exe, paths: [/a], match: {comm: app, exe: "*"}}\n')
    path.parent.chmod(0o755)
    path.chmod(0o644)
    code, out, err = pod.run(["setpriv", "--reuid", str(UID), "--regid", str(UID),
                              "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                              BIN, "match", "-c", path])
    assert code == 0, err
    assert parse(out) == []
    assert "rule exe matches none of the 1 process visible here" in err
    assert "unreadable" not in err


def test_one_rule(pod, workdir):
    a, _ = start_target(pod, "--comm", "alpha")
    start_target(pod, "--comm", "beta")
    path = rules_file(workdir, """\
  - {name: alpha, paths: [/a], match: {comm: alpha}}
  - {name: beta, paths: [/a], match: {comm: beta}}
""")
    rows, err = match(pod, path, "alpha")
    assert [(r[0], r[1]) for r in rows] == [("alpha", a)]
    assert "rule beta" not in err


def test_unknown_rule(pod, workdir):
    path = rules_file(workdir, """\
  - {name: alpha, paths: [/a], match: {comm: alpha}}
  - {name: beta, paths: [/a], match: {comm: beta}}
""")
    code, out, err = pod.run([BIN, "match", "-c", path, "gamma"])
    assert code == 2
    assert out == ""
    assert err == f"sigreload: {path} has no rule named 'gamma'; its rules are: alpha beta"


def test_invalid_rule_file(pod, workdir):
    path = rules_file(workdir, "  - {name: a, paths: [/a], match: {}}\n")
    code, out, err = pod.run([BIN, "match", "-c", path])
    assert code == 2
    assert out == ""
    assert err.splitlines()[0] == (f"{path}:2:35: match must be a mapping with at least one "
                                   "of comm, cmdline, exe or uid, not an empty mapping")


def test_empty_pod_has_no_hint(pod, workdir):
    """Only pause beside sigreload: the namespace is shared (pause is visible), no hint."""
    path = rules_file(workdir, "  - {name: app, paths: [/a], match: {comm: app}}\n")
    rows, err = match(pod, path)
    assert rows == []
    assert "sigreload: rule app matches none of the 0 processes visible here" in err
    assert HINT not in err


def test_hint_without_shared_namespace(workdir):
    """sigreload as PID 1 of its own namespace: a pod without shareProcessNamespace."""
    path = rules_file(workdir, "  - {name: app, paths: [/a], match: {comm: app}}\n")
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", BIN, "match", "-c", path],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert parse(r.stdout) == []
    assert r.stderr.splitlines() == [
        "sigreload: rule app matches none of the 0 processes visible here", HINT]
