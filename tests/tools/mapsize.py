#!/usr/bin/python3
"""What weighs what in a static binary: the bytes of the input sections that GNU ld kept, summed
by library (the archive's name; "sigreload" for the program's own objects, build/*/*.o), from the link
map that `make static` writes (-Wl,-Map). Code and data only: no .bss (it takes no room in the
file), no debugging sections.

    mapsize.py build/static/sigreload.map [--members N]

prints one "library bytes" line each, the largest first, then "total bytes"; with --members,
the N largest archive members too ("library(member) bytes").
"""

import argparse
import collections
import re
import sys

SKIP = (".bss", ".tbss", ".debug", ".comment", ".note", ".gnu.build.attributes", "COMMON")
# An input section: its name alone on a line when it is long (the figures then follow on the
# next line), else name, address, size and file on one line.
NAME = re.compile(r"^ (\.\S+|COMMON)\s*$")
ENTRY = re.compile(r"^ (\.\S+|COMMON)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)$")
MEMBER = re.compile(r"^(?P<archive>.*?)(?:\((?P<member>[^()]*)\))?$")


def kept(lines):
    """(library, member, bytes) of each input section that the output holds."""
    section = None
    for line in lines:
        if m := NAME.match(line):
            section = m.group(1)
            continue
        m = ENTRY.match(line)
        name = m and (m.group(1) or section)
        section = None
        if not m or not name or name.startswith(SKIP) or name.startswith(".rela"):
            continue
        archive, member = MEMBER.match(m.group(3)).group("archive", "member")
        # sigreload's own objects are build/static/*.o; crt1.o and the like keep their name
        library = "sigreload" if archive.startswith("build/") else archive.rsplit("/", 1)[-1]
        yield library, member, int(m.group(2), 16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("map")
    ap.add_argument("--members", type=int, default=0)
    args = ap.parse_args()
    with open(args.map, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if "Linker script and memory map" not in text:
        sys.exit(f"mapsize: {args.map}: not a GNU ld link map (no 'Linker script and memory map')")
    libraries, members = collections.Counter(), collections.Counter()
    for library, member, size in kept(text.split("Linker script and memory map", 1)[1].splitlines()):
        libraries[library] += size
        if member:
            members[f"{library}({member})"] += size
    for library, size in libraries.most_common():
        print(f"{library} {size}")
    print(f"total {sum(libraries.values())}")
    for member, size in members.most_common(args.members):
        print(f"{member} {size}")


if __name__ == "__main__":
    main()
