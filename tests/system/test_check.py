"""sigreload check, and the command line around it: the example rule files, the rule-file
corpus (exact errors, exit 2), files that are not rule files, where the rule file comes from,
--help, --version and usage errors."""

import os
import re
import subprocess

import pytest

from conftest import BIN, ROOT, TIMEOUT, sigreload

CONFIG = ROOT / "config"
RULES = ROOT / "tests" / "rules"
DEFAULT_FILE = "/etc/sigreload/sigreload.yaml"


def files(directory):
    found = sorted(directory.glob("*.yaml"))
    assert found, f"no rule files in {directory}"
    return found


def ids(paths):
    return [p.name for p in paths]


def summary(path, n):
    return f"sigreload: {path} has {n} error{'' if n == 1 else 's'}: nothing was loaded"


def check_plan(path, workdir):
    """Checks path, then checks its printed plan: the plan must be the same again."""
    r = sigreload("check", "-c", path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    head, _, plan = r.stdout.partition("\n")
    assert re.fullmatch(rf"# {re.escape(str(path))}: valid, \d+ rules?\b.*", head), head
    for key in ("debounce:", "max_wait:", "resync:", "handler_wait:", "verify_after:",
                "log_format:", "log_level:", "metrics_listen:", "rules:"):
        assert re.search(rf"^{key}", plan, re.M), f"the plan has no {key}"
    again = workdir / "plan.yaml"
    again.write_text(r.stdout)
    r2 = sigreload("check", "-c", again)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.partition("\n")[2] == plan
    return plan


@pytest.mark.parametrize("path", files(CONFIG), ids=ids(files(CONFIG)))
def test_example_configs(path, workdir):
    plan = check_plan(path, workdir)
    assert "  - name: " in plan


def test_example_configs_cover_the_apps():
    names = {p.name for p in files(CONFIG)}
    assert {"nginx.yaml", "haproxy.yaml", "generic.yaml"} <= names


@pytest.mark.parametrize("path", files(RULES / "good"), ids=ids(files(RULES / "good")))
def test_good_files(path, workdir):
    check_plan(path, workdir)


def expected_errors(path):
    lines = path.with_suffix(".err").read_text().splitlines()
    assert lines, f"{path.with_suffix('.err')} is empty"
    return [f"{path}:{line}" for line in lines]


@pytest.mark.parametrize("path", files(RULES / "bad"), ids=ids(files(RULES / "bad")))
def test_bad_files(path):
    r = sigreload("check", "-c", path)
    errors = expected_errors(path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == errors + [summary(path, len(errors))]


def test_bad_corpus_size():
    assert len(files(RULES / "bad")) >= 35


def generated(workdir, name, text):
    path = workdir / name
    path.write_text(text)
    return path


def rules_text(n, extra=""):
    return "rules:\n" + "".join(
        f"  - {{name: r{i}, paths: [/a], match: {{comm: x}}{extra}}}\n" for i in range(n))


def test_limits_rules(workdir):
    ok = generated(workdir, "256.yaml", rules_text(256))
    assert sigreload("check", "-c", ok).returncode == 0
    bad = generated(workdir, "257.yaml", rules_text(257))
    r = sigreload("check", "-c", bad)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"{bad}:2:3: too many rules (257; at most 256): let one rule watch several paths",
        summary(bad, 1),
    ]


def test_limits_paths(workdir):
    def text(n):
        return "rules:\n  - name: many\n    match: {comm: x}\n    paths:\n" + "".join(
            f"      - /etc/p{i}\n" for i in range(n))

    ok = generated(workdir, "64.yaml", text(64))
    assert sigreload("check", "-c", ok).returncode == 0
    bad = generated(workdir, "65.yaml", text(65))
    r = sigreload("check", "-c", bad)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"{bad}:5:7: too many paths (65; at most 64): watch a common parent directory instead",
        summary(bad, 1),
    ]


def signal_errors(path, n):
    col = len("  - {name: r, paths: [/a], match: {comm: x}, signal: ")
    return [
        f"{path}:{i + 2}:{col + len(str(i)) + 1}: unknown signal \"BAD\": use a name "
        "(SIGHUP or HUP), a number (1), or RTMIN+n"
        for i in range(n)
    ]


def test_limits_errors_exactly_50(workdir):
    path = generated(workdir, "50.yaml", rules_text(50, ", signal: BAD"))
    r = sigreload("check", "-c", path)
    assert r.returncode == 2
    assert r.stderr.splitlines() == signal_errors(path, 50) + [summary(path, 50)]


def test_limits_errors_cut(workdir):
    path = generated(workdir, "80.yaml", rules_text(80, ", signal: BAD"))
    r = sigreload("check", "-c", path)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[:51] == signal_errors(path, 50) + [
        f"{path}: too many errors, stopped after 50"]
    assert len(lines) == 52
    assert lines[51].startswith(f"sigreload: {path} has ")


def test_limits_errors_summary(workdir):
    path = generated(workdir, "80.yaml", rules_text(80, ", signal: BAD"))
    last = sigreload("check", "-c", path).stderr.splitlines()[-1]
    assert last == f"sigreload: {path} has 50 or more errors: nothing was loaded"


def test_check_is_fast_on_a_large_valid_file(workdir):
    """1 MiB is the size limit: a file near it is read and checked in well under a second."""
    path = generated(workdir, "big.yaml", rules_text(1) + "#" * 1000 + "\n" * 1040000)
    r = sigreload("check", "-c", path, timeout=5)
    assert r.returncode == 0, r.stderr
    too_big = generated(workdir, "too-big.yaml", rules_text(1) + "\n" * (1 << 20))
    r = sigreload("check", "-c", too_big)
    assert r.returncode == 2
    assert r.stderr == f"{too_big}: the rule file is larger than 1048576 bytes\n"


def test_missing_file(workdir):
    path = workdir / "missing.yaml"
    r = sigreload("check", "-c", path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == f"{path}: cannot read the rule file: No such file or directory\n"


def test_directory(workdir):
    r = sigreload("check", "-c", workdir)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"{workdir}: cannot read the rule file: not a regular file", summary(workdir, 1)]


def test_fifo_does_not_hang(workdir):
    """No writer will ever come: opening the FIFO to read must not wait for one."""
    fifo = workdir / "rules.yaml"
    os.mkfifo(fifo)
    r = sigreload("check", "-c", fifo, timeout=5)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"{fifo}: cannot read the rule file: not a regular file", summary(fifo, 1)]


def test_unreadable_file(workdir):
    path = workdir / "secret.yaml"
    path.write_text(rules_text(1))
    path.chmod(0)
    r = subprocess.run(["setpriv", "--reuid", "65532", "--regid", "65532", "--clear-groups",
                        BIN, "check", "-c", path], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 2
    assert r.stderr == f"{path}: cannot read the rule file: Permission denied\n"


def env_with(**values):
    env = {k: v for k, v in os.environ.items() if k != "SIGRELOAD_CONFIG"}
    env.update(values)
    return env


def plan_file(r):
    m = re.match(r"# (.*): valid, ", r.stdout)
    assert m, r.stdout + r.stderr
    return m.group(1)


def test_config_from_environment(workdir):
    a = generated(workdir, "a.yaml", rules_text(1))
    r = sigreload("check", env=env_with(SIGRELOAD_CONFIG=str(a)))
    assert r.returncode == 0, r.stderr
    assert plan_file(r) == str(a)


def test_option_overrides_environment(workdir):
    a = generated(workdir, "a.yaml", rules_text(1))
    b = generated(workdir, "b.yaml", rules_text(2))
    for args in (["-c", b], ["--config", b], [f"--config={b}"], ["-c" + str(b)]):
        r = sigreload("check", *args, env=env_with(SIGRELOAD_CONFIG=str(a)))
        assert r.returncode == 0, r.stderr
        assert plan_file(r) == str(b)
    # an option wins even when the environment names a file that is not there
    r = sigreload("check", "-c", b, env=env_with(SIGRELOAD_CONFIG=str(workdir / "nope")))
    assert r.returncode == 0
    assert plan_file(r) == str(b)


@pytest.mark.skipif(os.path.exists(DEFAULT_FILE), reason=f"{DEFAULT_FILE} exists here")
@pytest.mark.parametrize("value", [None, ""])
def test_default_file(value):
    env = env_with() if value is None else env_with(SIGRELOAD_CONFIG=value)
    r = sigreload("check", env=env)
    assert r.returncode == 2
    assert r.stderr == f"{DEFAULT_FILE}: cannot read the rule file: No such file or directory\n"


def test_empty_config_option_is_an_error(workdir):
    r = sigreload("check", "-c", "", env=env_with())
    assert r.returncode == 2
    assert DEFAULT_FILE not in r.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    r = sigreload(flag)
    assert r.returncode == 0
    assert r.stderr == ""
    assert r.stdout.startswith("Usage:\n")
    for text in ("sigreload check -c FILE", "sigreload match -c FILE [RULE]",
                 "sigreload hash PATH...", "--dry-run", "--log-format", "--log-level",
                 "--metrics-listen", "SIGRELOAD_CONFIG", DEFAULT_FILE, "Exit status"):
        assert text in r.stdout, text
    assert sigreload("check", flag).stdout == r.stdout  # after a command too


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    r = sigreload(flag)
    assert r.returncode == 0
    assert r.stderr == ""
    assert re.fullmatch(r"sigreload \d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?\n", r.stdout), r.stdout


USAGE_ERRORS = [
    (["bogus"], "unknown command 'bogus'"),
    (["Check", "-c", "x"], "unknown command 'Check'"),
    (["--bogus"], "unknown option '--bogus'"),
    (["check", "--bogus"], "unknown option '--bogus'"),
    (["check", "-x"], "unknown option '-x'"),
    (["check", "-c"], "option '-c' needs a value"),
    (["check", "--config"], "option '--config' needs a value"),
    (["check", "-c", "x.yaml", "extra"], "check takes no arguments, got 'extra'"),
    (["check", "-c", "x.yaml", "a", "b"], "check takes no arguments, got 'a'"),
    (["check", "--log-format", "xml"], "--log-format must be logfmt or json, not 'xml'"),
    (["check", "--log-level", "loud"],
     "--log-level must be debug, info, warn or error, not 'loud'"),
    (["check", "--metrics-listen", "9533"],
     "--metrics-listen '9533' is not an address such as :9533"),
    (["hash"], "hash needs at least one PATH"),
    (["match", "-c", "x.yaml", "a", "b"], "match takes at most one rule name, got 'b' too"),
]


@pytest.mark.parametrize("args,message", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors(args, message):
    r = sigreload(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == f"sigreload: {message}\nTry 'sigreload --help'.\n"


def test_unknown_short_option_in_a_cluster():
    r = sigreload("check", "-xy")
    assert r.returncode == 2
    assert "'check'" not in r.stderr


def test_errors_name_the_file_as_given(workdir):
    """A relative -c stays relative in messages: what the user typed, not a resolved path."""
    (workdir / "r.yaml").write_text("rules: []\n")
    r = subprocess.run([BIN, "check", "-c", "r.yaml"], cwd=workdir, capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == (
        "r.yaml:1:8: rules must be a list of one or more rules, not an empty list")


def test_file_name_with_newline(workdir):
    """The plan's first line stays a comment whatever the file is called."""
    path = generated(workdir, "odd\nname.yaml", rules_text(1))
    r = sigreload("check", "-c", path)
    assert r.returncode == 0
    assert r.stdout.startswith(f"# {workdir}/odd\\x0aname.yaml: valid, 1 rule")
    again = generated(workdir, "plan.yaml", r.stdout)
    assert sigreload("check", "-c", again).returncode == 0


def test_errors_are_one_line_each_whatever_the_input(workdir):
    """A newline in a key or in the file's name cannot forge a line of the report."""
    path = generated(workdir, "odd\nname.yaml",
                     rules_text(1) + '"x\\nsigreload: forged": 1\n')
    r = sigreload("check", "-c", path)
    assert r.returncode == 2
    shown = f"{workdir}/odd\\x0aname.yaml"
    assert r.stderr.splitlines() == [
        f'{shown}:3:1: unknown key "x\\x0asigreload: forged" at the top level; expected one '
        "of: debounce, max_wait, resync, handler_wait, verify_after, min_interval, "
        "start_grace, log_format, log_level, metrics_listen, rules",
        f"sigreload: {shown} has 1 error: nothing was loaded",
    ]
