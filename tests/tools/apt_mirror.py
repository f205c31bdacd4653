#!/usr/bin/env python3
"""Prints the Debian mirror this machine's apt uses, for builds that need one inside a container.

The image build (Dockerfile, `make image`) and tests/tools/base-image.sh fetch Debian packages
and sources. No file of the project names a mirror: they take the one apt is configured with
here, read as apt reads it: /etc/apt/sources.list and /etc/apt/sources.list.d/*.list (one-line
style), /etc/apt/sources.list.d/*.sources (deb822), in that order, disabled entries skipped.

The Debian archive is the first enabled `deb` entry over http(s) whose suites hold this
machine's release (VERSION_CODENAME in /etc/os-release) and whose components hold `main`; the
security archive, the first one whose suites hold `<release>-security`.

    apt_mirror.py [--root DIR] [--format env|build-args|hosts]

  env         DEBIAN_MIRROR=URI and, when there is one, DEBIAN_SECURITY_MIRROR=URI (default)
  build-args  the same as `--build-arg=NAME=URI` words for podman/docker build
  hosts       every host any enabled entry names, one a line (the tests check that no file of
              the project names one)

--root reads DIR/etc/... instead of /etc/... (for tests). Exit status 1, with what to do on
stderr, when no Debian archive is configured.
"""

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit


class NoMirror(Exception):
    pass


def _deb822(text, where):
    """The stanzas of a deb822 .sources file as dicts of field → list of words."""
    stanzas, fields, key = [], {}, None
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, None
        elif line[0] in " \t":
            if key is None:
                raise NoMirror(f"{where}:{n}: a continuation line outside a field")
            fields[key] += line.split()
        else:
            name, sep, value = line.partition(":")
            if not sep:
                raise NoMirror(f"{where}:{n}: not a 'Field: value' line: {line.strip()!r}")
            key = name.strip().lower()
            fields[key] = value.split()
    if fields:
        stanzas.append(fields)
    return [{
        "types": s.get("types", []),
        "uris": s.get("uris", []),
        "suites": s.get("suites", []),
        "components": s.get("components", []),
        "enabled": [w.lower() for w in s.get("enabled", ["yes"])] != ["no"],
    } for s in stanzas]


def _one_line(text, where):
    """The entries of a one-line style sources.list, as the deb822 parser returns them."""
    entries = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line, count=1)  # [arch=... signed-by=...]
        words = line.split()
        if len(words) < 3:
            raise NoMirror(f"{where}:{n}: not a 'deb URI SUITE [COMPONENT...]' line: {raw.strip()!r}")
        entries.append({"types": [words[0]], "uris": [words[1]], "suites": [words[2]],
                        "components": words[3:], "enabled": True})
    return entries


def sources(root):
    """Every entry apt reads, in apt's order."""
    etc = Path(root) / "etc" / "apt"
    files = [etc / "sources.list"]
    d = etc / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    entries = []
    for f in files:
        if not f.is_file():
            continue
        parse = _deb822 if f.suffix == ".sources" else _one_line
        entries += parse(f.read_text(errors="replace"), f)
    return entries


def release(root):
    """This machine's ID and VERSION_CODENAME from os-release."""
    for f in (Path(root) / "etc" / "os-release", Path(root) / "usr" / "lib" / "os-release"):
        if f.is_file():
            info = dict(re.findall(r'^([A-Z_]+)="?([^"\n]*)"?$', f.read_text(), re.M))
            return info.get("ID", ""), info.get("VERSION_CODENAME", "")
    return "", ""


def mirrors(root="/"):
    """(archive URI, security URI or None). Raises NoMirror saying what is missing."""
    distro, codename = release(root)
    if distro != "debian" or not codename:
        raise NoMirror(f"this machine is not Debian with a release name in /etc/os-release "
                       f"(ID={distro or '?'}, VERSION_CODENAME={codename or '?'})")

    def first(suite):
        for e in sources(root):
            if e["enabled"] and "deb" in e["types"] and suite in e["suites"] and "main" in e["components"]:
                for uri in e["uris"]:
                    if urlsplit(uri).scheme in ("http", "https"):
                        return uri.rstrip("/")
        return None

    archive = first(codename)
    if archive is None:
        raise NoMirror(f"no Debian archive in apt's sources (/etc/apt/sources.list, "
                       f"/etc/apt/sources.list.d/*.list and *.sources): no enabled 'deb' entry over "
                       f"http(s) for suite {codename}, component main")
    return archive, first(f"{codename}-security")


def hosts(root="/"):
    """Every host an enabled entry names, whatever its type or suite."""
    return sorted({urlsplit(uri).hostname for e in sources(root) if e["enabled"]
                   for uri in e["uris"] if urlsplit(uri).hostname})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="/")
    ap.add_argument("--format", choices=("env", "build-args", "hosts"), default="env")
    args = ap.parse_args(argv)
    try:
        if args.format == "hosts":
            print("\n".join(hosts(args.root)))
            return 0
        archive, security = mirrors(args.root)
    except (NoMirror, OSError) as e:
        print(f"apt_mirror: error: {e}; set DEBIAN_MIRROR (and DEBIAN_SECURITY_MIRROR) to the "
              f"Debian mirror to build from", file=sys.stderr)
        return 1
    found = {"DEBIAN_MIRROR": archive, "DEBIAN_SECURITY_MIRROR": security}
    words = [f"{k}={v}" for k, v in found.items() if v]
    if args.format == "build-args":
        print(" ".join(f"--build-arg={w}" for w in words))
    else:
        print("\n".join(words))
    if security is None:
        print("apt_mirror: no security archive configured: the build gets no security updates",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
