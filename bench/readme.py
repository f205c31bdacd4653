#!/usr/bin/env python3
"""The README's "Performance" section, generated from one `make bench` results JSON, so that the
section is regenerated from a run and never edited by hand (`make bench-readme`).

    bench/readme.py RESULTS.json [--write] [--notes FILE]

Copies the run's PNGs to docs/bench/ (latency.png, scaling.png) and prints the section's
markdown; --write puts it in README.md in place of the section there, from its "## Performance"
heading to the next "## " heading. --notes adds a markdown file's text after the goals (say
there why a goal is missed, with the profile that shows it).
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402
from report import PEERS, cpu, fmt_ms, get, lat, ratio, table  # noqa: E402

HEADING = "## Performance"
IMAGES = ROOT / "docs" / "bench"


def machine_line(R):
    m = R["machine"]
    binary = {True: "the static binary", False: "a dynamically linked binary"}.get(
        m.get("static"), "the binary")
    return (f"{m['cpus']} cores of {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}; "
            f"{m['sigreload']} ({binary}, commit {m['commit']}); {m.get('date', '?')}; load "
            f"average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end; "
            f"the run took {R['seconds'] / 60:.0f} minutes")


def headline(R):
    """sigreload, the floor and the peers on one table: the figures a reader compares."""
    L = R.get("latency", {})
    cols = [("sigreload", L.get("sigreload")), ("floor", L.get("floor")),
            ("inotify", L.get("inotify")), ("poll1", R.get("poll1")),
            ("poll30", R.get("poll30"))]
    sig = L.get("sigreload")
    idle = R.get("idle", {})
    sc = R.get("syscalls", {})

    def each(f):
        return [f(k, c) for k, c in cols]

    def lat_cell(k, c):
        if not c:
            return "–"
        text = f"{fmt_ms(lat(c, 'p50'))} / {fmt_ms(lat(c, 'p99'))}"
        return text if k in ("sigreload", "floor") else text + ratio(lat(c, "p50"),
                                                                     lat(sig, "p50"))

    def idle_cell(k, _c):
        i = idle.get(k)
        if not i:
            return "–"
        per_min = 60 / i["seconds"]
        return (f"{fmt_ms(i['cpu_ms'] * per_min)} / {round(i['wakeups'] * per_min)} / "
                f"{round(i['processes_started'] * per_min)}")

    rows = [["`..data` rename → signal handler, p50 / p99", *each(lat_cell)],
            ["CPU per update", *each(lambda k, c: fmt_ms(cpu(c)) + (
                "" if k in ("sigreload", "floor") else ratio(cpu(c), cpu(sig))))],
            ["system calls per update (on /proc)", *each(
                lambda k, c: f"{sc[k]['per_update']:.0f} ({sc[k]['proc_per_update']:.0f})"
                if k in sc else "–")],
            ["idle, per minute: CPU / wakeups / processes started", *each(idle_cell)],
            ["resident memory (VmRSS)", *each(
                lambda k, c: f"{c['rss_kb'] / 1024:.2f} MiB" if c and c.get("rss_kb") else "–")],
            ["signals per real change / per swap to identical content", *each(
                lambda k, c: f"{get(c, 'change', 'signals_per_op'):.1f} / "
                             f"{get(c, 'identical', 'signals_per_op'):.1f}"
                if get(c, "identical", "signals_per_op") is not None else "–")]]
    return table(["", "sigreload", "floor: inotify → kill(2)", PEERS["inotify"],
                  "poll 1 s (md5sum + pgrep)", "poll 30 s"], rows)


def section(R, images, notes=None):
    L = R.get("latency", {})
    md = [HEADING,
          "`make deps && make bench` (root, 15 to 20 minutes on two cores) measures sigreload "
          "side by side with what users run today and with the floor, a bare inotify → "
          "`kill(2)` watcher: the kubelet's atomic update replayed in C, the clock read right "
          "before the `..data` rename and in the target's signal handler, each tool in a PID "
          f"namespace of its own ({L.get('pod_processes', 50)} processes), their updates "
          "interleaved. `bench/README.md` explains the method. This section is generated from "
          "the run's JSON by `make bench-readme`; do not edit it by hand.",
          f"Machine: {machine_line(R)}. Ratio = peer ÷ sigreload.",
          headline(R)]
    if "latency" in images:
        md.append(f"![Latency distribution: sigreload, the floor and the peers]"
                  f"(docs/bench/{images['latency']})")
    md += report.goals_section(R)
    if notes:
        md.append(notes.strip())
    md += report.syscalls_section(R)
    md += report.scaling_section(R)
    if "scaling" in images:
        md.append(f"![Cost of an update against rules, files, processes and paths]"
                  f"(docs/bench/{images['scaling']})")
    md += report.scrapes_section(R)
    md += report.idle_section(R)
    md += report.memory_section(R)
    return "\n\n".join(md) + "\n"


def images(R, results_dir):
    """The run's PNGs that exist, by kind: {kind: path}; docs/bench/ names them by kind."""
    out = {}
    for name in R.get("images", []):
        kind = name.rsplit("-", 1)[-1].removesuffix(".png")
        if (results_dir / name).exists():
            out[kind] = results_dir / name
    return out


def replace_section(readme, text):
    """README.md with its Performance section replaced by text."""
    lines = readme.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == HEADING)
    except StopIteration:
        return readme.rstrip("\n") + "\n\n" + text
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + text + ("\n" + tail if tail else "")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="a results JSON of `make bench` (bench/results/*.json)")
    ap.add_argument("--write", action="store_true", help="replace the section in README.md")
    ap.add_argument("--notes", help="a markdown file to add after the goals")
    o = ap.parse_args(argv)
    path = Path(o.results)
    R = json.loads(path.read_text())
    notes = Path(o.notes).read_text() if o.notes else None
    pngs = images(R, path.parent)
    text = section(R, {kind: f"{kind}.png" for kind in pngs}, notes)
    if o.write:
        IMAGES.mkdir(parents=True, exist_ok=True)
        for kind, src in pngs.items():
            shutil.copyfile(src, IMAGES / f"{kind}.png")
        readme = ROOT / "README.md"
        readme.write_text(replace_section(readme.read_text(), text))
        print(f"README.md: Performance section from {path.name}; images in docs/bench/",
              file=sys.stderr)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
