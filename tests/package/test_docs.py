"""The man pages: lint-clean, complete against the code and the contract, examples that work.

Each check fails when something a user can type, write or scrape is added (or removed) without
the docs following: an option (from `sigreload --help`), a metric (what a running sigreload
exposes), an example rule file (config/*.yaml), a quoted output. The rule file's keys and their
defaults are checked against the parser's own tables by tests/unit/test_rules.c.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import Log, http_get, start, workdir  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SIGRELOAD_BIN", str(ROOT / "sigreload"))
MAN8 = ROOT / "man" / "sigreload.8"
MAN5 = ROOT / "man" / "sigreload.yaml.5"
TIMEOUT = float(os.environ.get("SIGRELOAD_TEST_TIMEOUT", "10"))

def run(argv, **kw):
    return subprocess.run(
        [str(a) for a in argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        **kw,
    )


def mandoc(*args):
    try:
        return run(["mandoc", *args])
    except FileNotFoundError:
        pytest.fail("mandoc is not installed: `make deps` installs it (Debian package mandoc)")


def rendered(page):
    """{SECTION: text} of the page as mandoc renders it for a terminal, markup removed, on lines
    wide enough that nothing is wrapped: what a reader sees."""
    r = mandoc("-Tascii", "-Owidth=1000", page)
    assert r.returncode == 0, r.stderr
    out, name = {}, None
    for line in re.sub(r".\x08", "", r.stdout).splitlines():
        if re.fullmatch(r"[A-Z][A-Z ]*", line):
            name = line
            out[name] = []
        elif name is not None:
            out[name].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def source_sections(page):
    """{title: mdoc source} for every .Sh and .Ss of a page (an .Sh's text ends at its first .Ss)."""
    out = {}
    for chunk in re.split(r"^\.S[hs] ", page.read_text(), flags=re.M)[1:]:
        title, _, body = chunk.partition("\n")
        out[title.strip()] = body
    return out


# The escapes the pages use inside literal displays, and what the reader sees for each.
ESCAPES = {r"\&": "", r"\e": "\\", r"\(dq": '"', r"\-": "-", r"\(aq": "'"}
ESCAPE_RX = re.compile("|".join(re.escape(e) for e in ESCAPES))


def literal_blocks(source):
    """The .Bd -literal displays of some mdoc source, as text."""
    blocks = []
    for body in re.findall(r"^\.Bd -literal[^\n]*\n(.*?)^\.Ed$", source, re.M | re.S):
        assert "\\" not in ESCAPE_RX.sub("", body), f"an escape test_docs.py cannot read:\n{body}"
        blocks.append(ESCAPE_RX.sub(lambda m: ESCAPES[m.group(0)], body))
    return blocks


def words(text, pattern):
    return set(re.findall(rf"(?<![\w-]){pattern}(?![\w-])", text))


def help_text():
    r = run([BIN, "--help"])
    assert r.returncode == 0, r.stderr
    return r.stdout


def check_plan(path, cwd=None):
    """`sigreload check` of a rule file: its resolved plan without the header naming the file."""
    r = run([BIN, "check", "-c", path], cwd=cwd)
    assert r.returncode == 0, f"sigreload check -c {path} exits {r.returncode}:\n{r.stderr}"
    header, _, plan = r.stdout.partition("\n")
    assert header.startswith("# "), r.stdout
    return plan


@pytest.mark.parametrize("page", [MAN8, MAN5], ids=lambda p: p.name)
def test_mandoc_lint_is_clean(page):
    r = mandoc("-Tlint", "-Wwarning", page)
    assert r.stdout + r.stderr == "", f"mandoc -Tlint -Wwarning {page.name}:\n{r.stdout}{r.stderr}"
    assert r.returncode == 0


def test_every_option_of_help_is_documented():
    text = help_text()
    longs = words(text, r"--[a-z][a-z0-9-]*")
    pairs = dict(re.findall(r"^\s+(-[A-Za-z]), (--[a-z][a-z0-9-]*)", text, re.M))
    assert {"--help", "--version", "--config"} <= longs, f"cannot read options from --help:\n{text}"
    assert {"-c", "-h", "-V"} <= set(pairs), f"cannot read short options from --help:\n{text}"
    sec = rendered(MAN8)
    synopsis, options = words(sec["SYNOPSIS"], r"--?[A-Za-z][a-z0-9-]*"), sec["OPTIONS"]
    short_of = {long: short for short, long in pairs.items()}
    missing = sorted(o for o in longs if o not in synopsis and short_of.get(o) not in synopsis)
    assert not missing, f"SYNOPSIS of sigreload.8 lacks options of sigreload --help: {missing}"
    missing = sorted(o for o in longs | set(pairs) if o not in words(options, re.escape(o)))
    assert not missing, f"OPTIONS of sigreload.8 lacks options of sigreload --help: {missing}"
    stale = sorted(words(options, r"--[a-z][a-z0-9-]*") - longs)
    assert not stale, f"OPTIONS of sigreload.8 documents options --help does not know: {stale}"


def test_every_command_of_help_is_documented():
    text = help_text()
    commands = set(re.findall(r"^\s+sigreload \[?([a-z]+)", text, re.M))
    assert {"run", "check", "match", "hash"} <= commands, f"cannot read commands from --help:\n{text}"
    sec = rendered(MAN8)
    for c in sorted(commands):
        assert re.search(rf"sigreload \[?{c}\b", sec["SYNOPSIS"]), f"SYNOPSIS lacks {c}"
        assert re.search(rf"^     {c}\b", sec["COMMANDS"], re.M), f"COMMANDS lacks an entry for {c}"


def exposed_metrics(workdir):
    """The metric families a running sigreload exposes (its `# TYPE` lines), for one rule."""
    (workdir / "app.conf").write_text("v1\n")
    (workdir / "rules.yaml").write_text(
        f"metrics_listen: 127.0.0.1:0\nrules:\n  - name: app\n    paths: [{workdir}/app.conf]\n"
        "    match: {comm: no-such-process}\n")
    r = start([BIN, "run", "-c", workdir / "rules.yaml", "--no-seccomp"])
    try:
        addr = Log(r.err).expect("serving /metrics, /healthz, /readyz")["address"]
        status, body = http_get(addr, "/metrics")
        assert status == 200
    finally:
        r.stop()
        r.close()
    return set(re.findall(r"^# TYPE (\S+) ", body, re.M))


def test_every_metric_is_documented(workdir):
    """The names are part of the interface: every family sigreload exposes is in METRICS of
    sigreload.8, and every name there is one it exposes."""
    sec = rendered(MAN8)["METRICS"]
    documented = words(sec, r"(?:sigreload|process)_[a-z0-9_]+")
    exposed = exposed_metrics(workdir)
    missing = sorted(exposed - documented)
    assert not missing, f"METRICS of sigreload.8 lacks metrics sigreload exposes: {missing}"
    stale = sorted(documented - exposed)
    assert not stale, f"METRICS of sigreload.8 names metrics sigreload does not expose: {stale}"
    for endpoint in ("/metrics", "/healthz", "/readyz"):
        assert f"GET {endpoint}" in sec, f"METRICS of sigreload.8 lacks GET {endpoint}"


def rule_file_examples(page):
    """The literal displays in a page's EXAMPLES that are rule files: they hold a top-level
    rules: list."""
    return [b for b in literal_blocks(source_sections(page)["EXAMPLES"])
            if re.search(r"^rules:", b, re.M)]


def test_example_rule_files_are_valid_and_match_config(workdir):
    plans = {MAN5: set(), MAN8: set()}
    for page, found in plans.items():
        examples = rule_file_examples(page)
        assert examples, f"EXAMPLES of {page.name} holds no rule file"
        for i, text in enumerate(examples):
            f = workdir / f"{page.name}-example-{i}.yaml"
            f.write_text(text)
            found.add(check_plan(f))
    configs = sorted((ROOT / "config").glob("*.yaml"))
    assert configs, "no config/*.yaml"
    for cfg in configs:
        assert check_plan(cfg) in plans[MAN5], (
            f"no example in EXAMPLES of sigreload.yaml.5 has the plan of config/{cfg.name} "
            "(sigreload check): copy the file there"
        )


def test_error_example_is_what_check_prints(workdir):
    blocks = literal_blocks(source_sections(MAN5)["Errors"])
    runs = [i for i, b in enumerate(blocks) if b.startswith("$ sigreload check -c ")]
    assert len(runs) == 1 and runs[0] > 0, "Errors of sigreload.yaml.5: expected a file, then a run"
    command, *expected = blocks[runs[0]].splitlines()
    name = command.split()[-1]
    (workdir / name).write_text(blocks[runs[0] - 1])
    r = run([BIN, "check", "-c", name], cwd=workdir)
    assert r.returncode == 2
    assert r.stderr.splitlines() == expected, f"sigreload check now prints:\n{r.stderr}"


def test_hash_example_is_what_hash_prints(workdir):
    blocks = [b for b in literal_blocks(source_sections(MAN8)["COMMANDS"]) if "$ sigreload hash " in b]
    assert len(blocks) == 1, "COMMANDS of sigreload.8: expected one example of hash"
    expected, out = [], []
    for line in blocks[0].splitlines():
        if not line.startswith("$ "):
            expected.append(line)
            continue
        cmd = line[2:]
        if cmd.startswith("sigreload "):
            r = run([BIN, *cmd.split()[1:]], cwd=workdir)
        else:
            r = run(["sh", "-c", cmd], cwd=workdir)
        assert r.returncode == 0, f"{cmd}: {r.stderr}"
        out.extend(r.stdout.splitlines())
    assert len(out) == len(expected), "sigreload hash now prints:\n" + "\n".join(out)
    for got, want in zip(out, expected):
        # "..." stands for the middle of a digest the page shortens
        rx = r"[0-9a-f]+".join(re.escape(part) for part in want.split("..."))
        assert re.fullmatch(rx, got), f"documented {want!r}, sigreload hash prints {got!r}"
