"""When a rule matches nothing: `sigreload match` lists the processes nearest to it and the keys
of the rule each fails, so that nobody has to compare the rule with `ps` by eye; `run`'s
"no target" line says the same in its hint. Real processes in a pod, the columns checked as a
reader sees them."""

import os
import re

from conftest import BIN, Reloader, helper, rules, rule
from kubelet import AtomicVolume
from test_match import UID, start_target, unquote

NEAREST = re.compile(r"^sigreload: rule (\S+): the nearest processes, and the keys of the rule "
                     r"they fail:$")
NONE_NEAR = re.compile(r"^sigreload: rule (\S+): no process comes near it either$")
NO_PTRACE = ["setpriv", "--reuid", str(UID), "--regid", str(UID), "--clear-groups",
             "--inh-caps=-all", "--bounding-set=-all"]


def nearest(stderr):
    """{rule: [(pid, ppid, uid, fails, comm, cmdline)]} of every nearest-processes table, and
    the header and row lines of each, as printed."""
    tables, lines, current = {}, {}, None
    for line in stderr.splitlines():
        if m := NEAREST.match(line):
            current = m[1]
            tables[current], lines[current] = [], []
        elif m := NONE_NEAR.match(line):
            tables[m[1]], lines[m[1]] = [], []
            current = None
        elif current and line.startswith("  "):
            lines[current].append(line)
            if line.split()[:3] == ["PID", "PPID", "UID"]:
                continue
            m = re.match(r"^ +(\d+) +(\d+) +(\S+)  (\S+) +(.*)$", line)
            assert m, f"not a row: {line!r}"
            comm, rest = unquote(m[5])
            rest = rest.lstrip(" ")
            cmdline = unquote(rest)[0] if rest.startswith('"') else rest
            tables[current].append((int(m[1]), int(m[2]), m[3], m[4], comm, cmdline))
        else:
            current = None
    return tables, lines


def rules_file(workdir, text):
    os.chmod(workdir, 0o755)
    path = workdir / "rules.yaml"
    path.write_text("rules:\n" + text)
    path.chmod(0o644)
    return path


def match(pod, path, prefix=()):
    code, out, err = pod.run([*prefix, BIN, "match", "-c", path])
    assert code == 0, err
    return out, err


def columns_aligned(lines):
    """Every row of a table starts its COMM and CMDLINE cells where its header puts them."""
    header, *rows = lines
    for column in ("COMM", "CMDLINE"):
        at = header.index(column)
        for row in rows:
            assert row[at - 2:at] == "  " and row[at] != " ", (
                f"the {column} column moved:\n{header}\n{row}")


def test_match_shows_the_nearest_processes_and_the_keys_they_fail(pod, workdir):
    # what users ran into: setproctitle renames gunicorn, `python3 -m gunicorn` is python3,
    # haproxy's master-worker set in haproxy.cfg has no -W, nginx's workers run as www-data
    master, proc = start_target(pod, "--comm", "gunicorn: maste", "--workers", "1")
    proc.out.pos = 0  # the worker may report before its master
    worker = int(proc.out.expect(r"^worker (\d+)$")[1])
    module, _ = start_target(pod, "--comm", "python3", "--config", "/srv/gunicorn.conf.py")
    haproxy, _ = start_target(pod, "--comm", "haproxy", "--config", "/etc/haproxy/haproxy.cfg")
    www, _ = start_target(pod, "--comm", "nginx", uid=33)
    start_target(pod, "--comm", "bash")  # near nothing
    path = rules_file(workdir, """\
  - {name: gunicorn, paths: [/a], match: {comm: gunicorn}}
  - {name: haproxy, paths: [/a], match: {comm: haproxy, cmdline: '(^| )-Ws?( |$)'}}
  - {name: nginx, paths: [/a], match: {comm: nginx, uid: 0}}
  - {name: nothing, paths: [/a], match: {comm: zzz}}
""")
    out, err = match(pod, path)
    assert out.splitlines()[1:] == []  # the table of matches is empty: nothing would be sent
    tables, lines = nearest(err)
    target = helper("target")
    assert tables == {
        "gunicorn": [
            (master, 0, "0", "comm", "gunicorn: maste",
             f"{target} --comm gunicorn: maste --workers 1"),
            (worker, master, "0", "comm", "gunicorn: maste",
             f"{target} --comm gunicorn: maste --workers 1"),
            (module, 0, "0", "comm", "python3",
             f"{target} --comm python3 --config /srv/gunicorn.conf.py"),
        ],
        "haproxy": [(haproxy, 0, "0", "cmdline", "haproxy",
                     f"{target} --comm haproxy --config /etc/haproxy/haproxy.cfg")],
        "nginx": [(www, 0, "33", "uid", "nginx", f"{target} --comm nginx")],
        "nothing": [],
    }
    assert "sigreload: rule gunicorn matches none of the 6 processes visible here" in err
    for rule_lines in lines.values():
        if rule_lines:
            columns_aligned(rule_lines)


def test_odd_comm_values_keep_the_columns(pod, workdir):
    """A comm with blanks, tabs, quotes or backslashes is quoted and escaped, and the columns
    after it stay where the header puts them, in both tables."""
    odd = ["a b", "tab\there", 'q"uote', "back\\slash", "123456789012345"]
    pids = {comm: start_target(pod, "--comm", comm)[0] for comm in odd}
    path = rules_file(workdir, """\
  - {name: all, paths: [/a], match: {comm: "*"}}
  - {name: near, paths: [/a], match: {comm: "123456789*x"}}
""")
    out, err = match(pod, path)
    table = out.splitlines()
    columns_aligned(table)
    shown = {}
    for line in table[1:]:
        comm, _ = unquote(line[table[0].index("COMM"):])
        shown[int(line.split()[1])] = comm
    assert {pid: comm for pid, comm in shown.items() if pid in pids.values()} == {
        pid: comm for comm, pid in pids.items()}
    tables, lines = nearest(err)
    assert [row[4] for row in tables["near"]] == ["123456789012345"]
    columns_aligned(lines["near"])


def test_an_exe_that_cannot_be_read_is_named(pod, workdir):
    """Without CAP_SYS_PTRACE, another uid's exe is unreadable: the candidate says so rather
    than that its exe differs."""
    root_nginx, _ = start_target(pod, "--comm", "nginx")
    path = rules_file(workdir, "  - {name: nginx, paths: [/a], match: {exe: /usr/sbin/nginx}}\n")
    _, err = match(pod, path, prefix=NO_PTRACE)
    tables, _ = nearest(err)
    assert [(row[0], row[3]) for row in tables["nginx"]] == [(root_nginx, "exe-unreadable")]
    assert ("sigreload: rule nginx: the exe of 1 process is unreadable (another uid): match by "
            "comm or cmdline, or add capability SYS_PTRACE") in err
    _, err = match(pod, path)  # as root: readable, and not nginx's
    tables, _ = nearest(err)
    assert [(row[0], row[3]) for row in tables["nginx"]] == [(root_nginx, "exe")]


def test_run_says_which_key_failed_when_nothing_is_signaled(pod, workdir):
    vol = AtomicVolume(workdir / "vol")
    vol.write({"app.conf": "1\n"})
    renamed, _ = start_target(pod, "--comm", "gunicorn: maste")
    r = Reloader(pod, workdir, rules(rule("gunicorn", [vol.root], "gunicorn")))
    r.log.expect("watching", rule="gunicorn")
    vol.write({"app.conf": "2\n"})
    ev = r.log.expect("no target", rule="gunicorn")
    assert ev["hint"] == (f'nearest: pid {renamed} "gunicorn: maste" fails comm; '
                          "sigreload match -c FILE lists them")


def test_run_says_when_an_exe_could_not_be_read(pod, workdir):
    os.chmod(workdir, 0o755)
    vol = AtomicVolume(workdir / "vol")
    vol.write({"app.conf": "1\n"})
    nginx, _ = start_target(pod, "--comm", "nginx")
    r = Reloader(pod, workdir, rules(
        "  - name: nginx\n    paths: [" + str(vol.root) + "]\n    match: {exe: /usr/sbin/nginx}\n"),
        prefix=NO_PTRACE)
    r.log.expect("watching", rule="nginx")
    vol.write({"app.conf": "2\n"})
    ev = r.log.expect("no target", rule="nginx")
    assert ev["hint"] == (f'nearest: pid {nginx} "nginx" fails exe (unreadable: another '
                          "uid's, and no CAP_SYS_PTRACE); sigreload match -c FILE lists them")


def test_run_with_nothing_near(pod, workdir):
    vol = AtomicVolume(workdir / "vol")
    vol.write({"app.conf": "1\n"})
    start_target(pod, "--comm", "bash")
    r = Reloader(pod, workdir, rules(rule("app", [vol.root], "zzz")))
    r.log.expect("watching", rule="app")
    vol.write({"app.conf": "2\n"})
    ev = r.log.expect("no target", rule="app")
    assert ev["hint"] == ("no process comes near the rule; sigreload match -c FILE shows what "
                          "it matches")
