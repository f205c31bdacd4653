"""Pitfalls of the volumes people watch, as sigreload meets them (sigreload.yaml(5), CAVEATS):
a projected volume with a service-account token, which the kubelet swaps about hourly, and
Vault Agent's renders, a temporary file renamed into the watched directory."""

import base64
import json
import os
import random
import re

import pytest

from conftest import ROOT, Reloader, Target, escaped, rules, rule, sigreload
from kubelet import AtomicVolume

HINT = ("the kubelet rotates this token about every hour (at 80% of its expirationSeconds), "
        "and each rotation reloads the targets: list the files the app reads in paths instead, "
        "or mount the token in a volume of its own")


def jwt(claims):
    enc = lambda d: base64.urlsafe_b64encode(  # noqa: E731
        json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'RS256', 'kid': 'k1'})}.{enc(claims)}.c2lnbmF0dXJl"


def bound_token(iat):
    """A token as the kubelet projects it from the TokenRequest API (an hour's expiry)."""
    return jwt({"aud": ["https://kubernetes.default.svc.cluster.local"], "exp": iat + 3607,
                "iat": iat, "iss": "https://kubernetes.default.svc.cluster.local",
                "kubernetes.io": {"namespace": "web", "pod": {"name": "web-0", "uid": "1b6c"},
                                  "serviceaccount": {"name": "default", "uid": "8f2e"},
                                  "warnafter": iat + 3242},
                "nbf": iat, "sub": "system:serviceaccount:web:default"})


def legacy_token():
    """A token from a kubernetes.io/service-account-token Secret: no expiry, never rotated."""
    return jwt({"iss": "kubernetes/serviceaccount",
                "kubernetes.io/serviceaccount/namespace": "web",
                "sub": "system:serviceaccount:web:default"})


def projected(token, conf="worker_processes 2;\n"):
    """A projected volume mixing the app's ConfigMap key and kube-api-access's sources."""
    return {"app.conf": conf, "token": token, "ca.crt": "-----BEGIN CERTIFICATE-----\n",
            "namespace": "web"}


# ---- a projected volume with a service-account token -------------------------------------

def test_check_warns_about_a_rotating_token(workdir):
    vol = AtomicVolume(workdir / "vol")
    vol.write(projected(bound_token(1_798_758_000)))
    legacy = AtomicVolume(workdir / "legacy")
    legacy.write(projected(legacy_token()))
    path = workdir / "r.yaml"
    path.write_text(rules(rule("whole", [vol.root], "app"),
                          rule("file", [vol.root / "app.conf"], "app"),
                          rule("legacy", [legacy.root], "app")))
    r = sigreload("check", "-c", path)
    assert r.returncode == 0  # a warning, not an error: the rules are valid
    assert r.stderr.splitlines() == [
        f"sigreload: warning: rule whole: {vol.root}/token is a projected service-account "
        f"token: {HINT}"]


def test_a_rule_on_the_volume_reloads_at_each_rotation_a_rule_on_its_file_does_not(pod, workdir):
    vol = AtomicVolume(workdir / "vol")
    vol.write(projected(bound_token(1_798_758_000)))
    whole = Target(pod, "--comm", "whole")
    files = Target(pod, "--comm", "files")
    r = Reloader(pod, workdir, rules(rule("whole", [vol.root], "whole"),
                                     rule("files", [vol.root / "app.conf"], "files")))
    ev = r.log.expect("path holds a rotating service-account token")
    assert ev == {**ev, "rule": "whole", "path": str(vol.root), "token": f"{vol.root}/token",
                  "hint": HINT}
    r.log.expect("watching", rule="whole")
    r.log.expect("watching", rule="files")
    assert r.log.count("path holds a rotating service-account token") == 1

    # an hour later (48 minutes: 80 % of 3607 s), the kubelet rotates the token
    vol.write(projected(bound_token(1_798_758_000 + 2886)))
    r.log.expect("reloaded", rule="whole")
    r.log.expect("idle")  # both rules were evaluated in the same turn
    assert len(whole.settled(r)) == 1  # the reload nobody asked for
    assert r.log.count("unchanged", rule="files") == 1
    assert files.settled(r) == []


# ---- Vault Agent: a temporary file renamed into the directory ----------------------------

def vault_rule():
    """The rule sigreload.yaml(5) documents for Vault Agent, as the page shows it."""
    page = (ROOT / "man" / "sigreload.yaml.5").read_text()
    blocks = re.findall(r"^\.Bd -literal[^\n]*\n(.*?)^\.Ed$", page, re.M | re.S)
    found = [b for b in blocks if "/vault/secrets" in b and "rules:" in b]
    assert len(found) == 1, "sigreload.yaml.5 should show one rule for Vault Agent"
    return found[0]


def render(path, content):
    """Vault Agent's template write (consul-template's AtomicWrite): os.CreateTemp in the same
    directory (a name of random digits), write, fsync, close, chmod, rename over the file."""
    while True:
        tmp = path.parent / str(random.randint(0, 2**32 - 1))
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            continue
    try:
        os.write(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


@pytest.mark.parametrize("watched", ["directory", "file"])
def test_vault_agent_render_sends_one_signal_with_the_new_content(pod, workdir, watched):
    secrets = workdir / "vault" / "secrets"  # the agent's shared emptyDir
    secrets.mkdir(parents=True)
    conf = secrets / "app.conf"
    render(conf, "password=v1\n")
    text = vault_rule().replace("/vault/secrets", str(secrets))
    if watched == "file":
        text = text.replace(f"{secrets}\n", f"{conf}\n")
    assert str(secrets if watched == "directory" else conf) in text
    app = Target(pod, "--comm", "app", "--config", conf)
    r = Reloader(pod, workdir, text)
    r.log.expect("watching", rule="app")

    for version in ("v2", "v3"):
        render(conf, f"password={version}\n")
        assert app.expect_signal()[2:] == ("SIGHUP", escaped(f"password={version}\n"))
        r.log.expect("reloaded", rule="app")
        r.log.expect("idle")
    assert len(app.settled(r)) == 2  # one a render
    changed = [e for e in r.log.events() if e["msg"] == "changed"]
    assert [e["files"] for e in changed] == ["1", "1"]  # no temporary file ever hashed
    assert sorted(os.listdir(secrets)) == ["app.conf"]
