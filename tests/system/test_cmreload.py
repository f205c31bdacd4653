"""configmap-reload's command line (-volume-dir, -webhook-url, ...) instead of a rule file: Go's
flag spellings, the errors (exit 2, naming the flag), and `check` printing the rule file they
mean, the same plan as the equivalent rule file gives."""

import pytest

from conftest import sigreload

MISSING_URL = "sigreload: missing -webhook-url: the URL to request when it changes"
SUMMARY = "sigreload: configmap-reload's flags have 1 error: nothing was loaded"


def parser_knows_http(workdir):
    probe = workdir / "probe.yaml"
    probe.write_text(f"rules:\n  - name: p\n    paths: [{workdir}]\n"
                     "    http: {url: 'http://127.0.0.1:1/'}\n")
    return sigreload("check", "-c", probe).returncode == 0


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("args,err", [
    (["-volume-dir=/v"], [MISSING_URL, SUMMARY]),
    (["--webhook-url", "http://127.0.0.1:9090/-/reload"],
     ["sigreload: missing -volume-dir: the directory to watch", SUMMARY]),
    (["-volume-dir=/v", "-webhook-url=http://x/", "-webhook-status-code=2OO"],
     ["sigreload: -webhook-status-code 2OO: not an HTTP status (100 to 599)", SUMMARY]),
    (["-volume-dir=/v", "-webhook-url=http://x/", "--webhook-retries", "0"],
     ["sigreload: -webhook-retries 0: not a number of attempts (1 or more, the first one "
      "included, as configmap-reload counts them)", SUMMARY]),
    (["-volume-dir=/v", "-webhook-url=http://x/", "-web.listen-address=9533"],
     ["sigreload: -web.listen-address 9533: not an address such as :9533", SUMMARY]),
    (["-volume-dir=/v", "-webhook-url=http://x/", "-web.telemetry-path=/prometheus"],
     ["sigreload: -web.telemetry-path /prometheus: sigreload serves its metrics at /metrics "
      "only", SUMMARY]),
    (["-webhook-url=http://x/", "-volume-dir"],
     ["sigreload: flag needs an argument: -volume-dir", "Try 'sigreload --help'."]),
    (["-c", "/etc/sigreload/sigreload.yaml", "-volume-dir=/v", "-webhook-url=http://x/"],
     ["sigreload: -c and configmap-reload's flags (-volume-dir, -webhook-url, ...) exclude "
      "each other", "Try 'sigreload --help'."]),
], ids=["no-url", "no-dir", "status", "retries", "listen", "telemetry", "no-value", "with-c"])
def test_flag_errors_exit_2_naming_the_flag(command, args, err):
    r = sigreload(command, *args)
    assert (r.returncode, r.stdout, r.stderr.splitlines()) == (2, "", err)


@pytest.mark.parametrize("command", ["match", "hash"])
def test_only_run_and_check_take_them(command):
    r = sigreload(command, "-volume-dir=/v", "-webhook-url=http://x/")
    assert r.returncode == 2
    assert r.stderr.startswith(f"sigreload: {command} does not take configmap-reload's flags")


def test_help_shows_them():
    out = sigreload("--help").stdout
    assert "-volume-dir=DIR... -webhook-url=URL..." in out
    assert "configmap-reload's flags, instead of -c" in out


def plan(r):
    assert r.returncode == 0, r.stderr
    head, _, rest = r.stdout.partition("\n")
    return head, rest


@pytest.mark.parametrize("spelling", [
    ["-volume-dir={d}", "-webhook-url=http://127.0.0.1:9090/-/reload", "-webhook-retries=3",
     "-web.listen-address=:9600"],
    ["--volume-dir", "{d}", "--webhook-url", "http://127.0.0.1:9090/-/reload",
     "--webhook-retries", "3", "--web.listen-address", ":9600", "--webhook-method=POST",
     "-webhook-status-code", "200", "-web.telemetry-path=/metrics"],
], ids=["one-dash", "two-dashes"])
def test_check_prints_the_equivalent_rule_file(workdir, spelling):
    if not parser_knows_http(workdir):
        pytest.skip("this build's rule parser has no http: key yet")
    vol = workdir / "config"
    vol.mkdir()
    r = sigreload("check", *[a.format(d=vol) for a in spelling])
    head, flags_plan = plan(r)
    assert head == "# configmap-reload's flags: valid, 1 rule (every default written out)"
    # what a user would write: configmap-reload's defaults are exactly 200 and one attempt
    same = workdir / "same.yaml"
    same.write_text('metrics_listen: ":9600"\nrules:\n  - name: webhook\n'
                    f"    paths: [{vol}]\n"
                    "    http: {url: 'http://127.0.0.1:9090/-/reload', expect_status: 200, "
                    "retries: 2}\n")
    assert plan(sigreload("check", "-c", same))[1] == flags_plan
    again = workdir / "plan.yaml"
    again.write_text(r.stdout)
    assert plan(sigreload("check", "-c", again))[1] == flags_plan


def test_each_webhook_url_is_a_rule_and_a_password_stays_hidden(workdir):
    if not parser_knows_http(workdir):
        pytest.skip("this build's rule parser has no http: key yet")
    r = sigreload("check", f"-volume-dir={workdir}", "-volume-dir=relative/dir",
                  "-webhook-url=http://admin:s3cret@127.0.0.1:9090/-/reload",
                  "-webhook-url=http://127.0.0.1:9093/-/reload")
    head, text = plan(r)
    assert head == "# configmap-reload's flags: valid, 2 rules (every default written out)"
    assert '  - name: "webhook-1"' in text and '  - name: "webhook-2"' in text
    assert "s3cret" not in r.stdout + r.stderr
    assert text.count(str(workdir)) == 2
    assert text.count("/relative/dir") == 2  # from the working directory, as Go watched it
