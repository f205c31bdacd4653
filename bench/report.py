"""The markdown of a benchmark run (bench/run.py's results JSON): every table, and at the end the
goals of issue 11, each with the figure measured, what it is compared with, the ratio, and
whether it is met. A missed goal is reported, never an error."""

from rig import fmt_ms

PEERS = {"inotify": "inotifywait + pkill", "poll1": "poll 1 s", "poll30": "poll 30 s"}


def get(v, *path):
    for k in path:
        v = v.get(k) if isinstance(v, dict) else None
    return v


def ratio(peer, ours):
    """peer ÷ ours, as a short figure with ×."""
    if peer is None or ours is None:
        return ""
    if ours == 0:
        return " (∞×)" if peer > 0 else " (=)"
    return f" ({peer / ours:,.0f}×)" if peer / ours >= 10 else f" ({peer / ours:.1f}×)"


def times(a, b):
    """a ÷ b as "2.3×", or "–"."""
    if a is None or not b:
        return "–"
    r = a / b
    return f"{r:,.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def lat(res, q):
    return get(res, "change", "latency_ms", q)


def cpu(res):
    return get(res, "cpu", "ms_per_update")


def p50_p99(res):
    return f"{fmt_ms(lat(res, 'p50'))} / {fmt_ms(lat(res, 'p99'))}"


def header(R):
    m = R["machine"]
    end = m.get("loadavg_end") or [float("nan")]
    return (f"{m['sigreload']} ({m['commit']}) on {m['cpus']} × {m['cpu']}, "
            f"Linux {m['kernel']}, {m['memory_gib']} GiB; load average "
            f"{m['loadavg_start'][0]:.2f} at start, {end[0]:.2f} at end; "
            f"`make bench` took {R.get('seconds', 0) / 60:.1f} min")


# ---- sections ------------------------------------------------------------------------------

def latency_section(R):
    L = R.get("latency")
    if not L:
        return []
    sig, floor = L.get("sigreload", {}), L.get("floor", {})
    peers = {"inotify": L.get("inotify"), "poll1": R.get("poll1"), "poll30": R.get("poll30")}
    rows = []
    for q in ("p50", "p90", "p99", "max"):
        ours = lat(sig, q)
        rows.append([q, fmt_ms(ours), fmt_ms(lat(floor, q)), times(ours, lat(floor, q))]
                    + [fmt_ms(lat(p, q)) + ratio(lat(p, q), ours) for p in peers.values()])
    rows.append(["CPU per update", fmt_ms(cpu(sig)), fmt_ms(cpu(floor)),
                 times(cpu(sig), cpu(floor))]
                + [fmt_ms(cpu(p)) + ratio(cpu(p), cpu(sig)) for p in peers.values()])
    rows.append(["updates (missed)", *[f"{get(r, 'change', 'n')} ({get(r, 'change', 'missed')})"
                                       if r else "–" for r in [sig, floor]], "",
                 *[f"{get(r, 'change', 'n')} ({get(r, 'change', 'missed')})" if r else "–"
                   for r in peers.values()]])
    internal = sig.get("internal_ms") or {}
    deb = L.get("sigreload-debounce", {})
    md = ["### Latency: the kubelet's `..data` rename → the app's signal handler runs\n\n"
          f"A pod of {L.get('pod_processes', '?')} processes for each tool, debounce 0; the clock "
          "is read right before rename(2) and in the handler. sigreload, the floor and "
          "inotifywait + pkill run at the same time, their updates interleaved. "
          "sigreload ÷ floor is the goal's ratio; in the peers' columns, ratio = peer ÷ "
          "sigreload. CPU per update: schedstat run time (utime + stime in nanoseconds) of the "
          "tool's processes, with the children it reaped.\n\n"
          + table(["", "sigreload", "floor: bare inotify → kill(2)", "sigreload ÷ floor"]
                  + [PEERS[p] for p in peers], rows)
          + f"\n\nsigreload's own time, first event read → signal sent (its log): p50 "
          f"{fmt_ms(internal.get('p50'))}, p99 {fmt_ms(internal.get('p99'))}. With the default "
          f"200 ms debounce: p50 / p99 / max {p50_p99(deb)} / {fmt_ms(lat(deb, 'max'))} "
          f"({get(deb, 'change', 'n')} updates)."]
    return md


def syscalls_section(R):
    S = R.get("syscalls")
    if not S:
        return []
    sig, floor = S.get("sigreload", {}), S.get("floor", {})
    rows = [["**all**", f"**{sig['per_update']:.1f}**", f"**{sig['proc_per_update']:.1f}**",
             f"{floor.get('per_update', 0):.1f}"]]
    for name, c in list(sig["by_call"].items())[:16]:
        fc = get(floor, "by_call", name, "per_update")
        rows.append([f"`{name}`", f"{c['per_update']:.1f}", f"{c['proc_per_update']:.1f}",
                     f"{fc:.1f}" if fc else "–"])
    under = sig.get("latency_under_strace_ms", {})
    return [f"### System calls per update ({sig['updates']} updates, `{sig['method']}`)\n\n"
            + table(["call", "sigreload", "of which on /proc", "floor"], rows)
            + f"\n\nstrace stops the process at each call's entry and exit: under it "
            f"sigreload's latency was p50 {fmt_ms(under.get('p50'))}, p99 "
            f"{fmt_ms(under.get('p99'))}, against {p50_p99(get(R, 'latency', 'sigreload'))} "
            "without; the counts are exact, the time is not used."]


def scaling_section(R):
    S = R.get("scale", {})
    md = []
    if S.get("rules"):
        one = cpu(S["rules"].get("1"))
        rows = [[f"{int(k):,}", fmt_ms(cpu(r)), times(cpu(r), one), p50_p99(r),
                 get(r, "change", "n")] for k, r in sorted(S["rules"].items(), key=num)]
        md.append("### Cost against rules: each rule on a 4-file volume of its own, an update "
                  "changes one\n\n"
                  + table(["rules", "CPU per update", "÷ one rule", "latency p50 / p99",
                           "updates"], rows))
    if S.get("files"):
        F = sorted(S["files"].items(), key=num)
        one_other = cpu(F[0][1]["other"])
        rows = []
        for k, r in F:
            u, o = r["updated"], r["other"]
            extra = (cpu(u) - cpu(F[0][1]["updated"])) / (int(k) - 1) if int(k) > 1 else None
            rows.append([f"{int(k):,}", fmt_ms(cpu(u)),
                         f"{1000 * extra:.2f} µs" if extra is not None else "–",
                         p50_p99(u), fmt_ms(cpu(o)), times(cpu(o), one_other), p50_p99(o)])
        md.append("### Cost against files: a rule on a volume of N files and a rule on 4 files; "
                  "updates to the first, then to the second\n\n"
                  + table(["N files", "CPU per update of the N-file rule",
                           "per file beyond the first",
                           "latency p50 / p99", "CPU per update of the 4-file rule",
                           f"÷ next to {F[0][0]} file", "latency p50 / p99"], rows))
    if S.get("paths"):
        rows = []
        for k, r in sorted(S["paths"].items(), key=grid):
            nr, np_ = (int(x) for x in k.split("x"))
            rows.append([f"{nr:,}", f"{np_:,}", f"{nr * np_:,}", fmt_ms(cpu(r)), p50_p99(r),
                         get(r, "change", "n")])
        md.append("### Cost against rules × paths: each rule lists the files of its own volume "
                  "as its paths; an update changes one rule's volume\n\n"
                  + table(["rules", "paths each", "paths", "CPU per update",
                           "latency p50 / p99", "updates"], rows))
    if S.get("procs"):
        P = sorted(S["procs"].items(), key=num)
        s0 = P[0][1]["scan"]
        rows = []
        for k, r in P:
            sig, ino, scan = r.get("sigreload"), r.get("inotify"), r["scan"]
            m, p = scan["match"]["median_ms"], scan["pgrep"]["median_ms"]
            ms, ps = m - s0["match"]["median_ms"], p - s0["pgrep"]["median_ms"]
            rows.append([f"{int(k):,}", fmt_ms(cpu(sig)), p50_p99(sig),
                         fmt_ms(lat(ino, "p50")) + ratio(lat(ino, "p50"), lat(sig, "p50")),
                         fmt_ms(m), fmt_ms(p),
                         f"{fmt_ms(ms)} vs {fmt_ms(ps)}" + ratio(ps, ms) if ms > 0 and ps > 0
                         else "– (within the noise)" if k != P[0][0] else "–"])
        md.append("### Cost against the processes in the pod\n\n"
                  "The scan columns time `sigreload match -c FILE` (start-up, rule file, one "
                  "scan) and `pgrep -x app` inside the pod, median wall time; the last column "
                  "subtracts the smallest pod's time from both, leaving the scan.\n\n"
                  + table(["processes", "sigreload CPU per update", "latency p50 / p99",
                           "inotifywait + pkill p50", "`sigreload match`", "`pgrep -x app`",
                           "scan: sigreload vs pgrep"], rows))
    return md


def num(kv):
    return int(kv[0])


def grid(kv):
    return tuple(int(x) for x in kv[0].split("x"))


def scrapes_section(R):
    S = R.get("scrapes")
    if not S:
        return []
    w, b = S["without"], S["with"]

    def per_s(res):
        v = res.get("scans")
        return f"{v['scans_per_s']:.1f}" if v else "–"

    rows = [["latency p50", fmt_ms(lat(w, "p50")), fmt_ms(lat(b, "p50")),
             times(lat(b, "p50"), lat(w, "p50"))],
            ["latency p99", fmt_ms(lat(w, "p99")), fmt_ms(lat(b, "p99")),
             times(lat(b, "p99"), lat(w, "p99"))],
            ["CPU per update (with scrapers: serving them included)", fmt_ms(cpu(w)),
             fmt_ms(cpu(b)), times(cpu(b), cpu(w))],
            ["/proc scans a second, updates included", per_s(w), per_s(b), ""],
            ["updates (missed)", f"{get(w, 'change', 'n')} ({get(w, 'change', 'missed')})",
             f"{get(b, 'change', 'n')} ({get(b, 'change', 'missed')})", ""]]
    sc, sp = S["scans"], S["scrapes"]
    return [f"### /metrics under {S['scrapers']} scrapers, {S['processes']:,} processes in "
            "the pod\n\n" + table(["", "no scrapers", f"{S['scrapers']} scrapers", "ratio"], rows)
            + f"\n\nThe scrapers fetched /metrics {sp['per_s']:,.0f} times a second "
            f"({sp['failed']} failures). In {sc['seconds']:.1f} s of scrapes with no update: "
            f"{sc['accepted']:,} scrapes accepted and {sc['scans']} /proc scans "
            f"({sc['scans_per_s']:.1f} a second), counted by `{S['method']}` (a scan: "
            "`getdents64` on /proc returning 0, the end of a listing)."]


def idle_section(R):
    idle = R.get("idle", {})
    keys = [("sigreload", "sigreload"), ("sigreload-metrics", "sigreload, metrics on"),
            ("inotify", PEERS["inotify"]), ("poll1", PEERS["poll1"]), ("poll30", PEERS["poll30"])]
    keys = [(k, lab) for k, lab in keys if k in idle]
    md = []
    if keys:
        rows = []
        for label, key, f in [("CPU time, utime+stime (incl. reaped children)", "cpu_ms", fmt_ms),
                              ("CPU time, schedstat (live processes)", "run_ms", fmt_ms),
                              ("wakeups (voluntary context switches)", "wakeups", str),
                              ("involuntary context switches", "involuntary", str),
                              ("processes started", "processes_started", str),
                              ("resident memory (VmRSS, long-lived processes)", "rss_kb",
                               lambda v: f"{v / 1024:.2f} MiB")]:
            base = idle.get("sigreload", {}).get(key)
            row = [label]
            for k, _ in keys:
                v = idle[k].get(key)
                row.append(f(v) + (ratio(v, base) if k not in ("sigreload", "sigreload-metrics")
                                   and key != "rss_kb" else ""))
            rows.append(row)
        note = "" if idle.get("metrics_endpoint_answered") else (
            " The metrics endpoint did not answer in this build: the two sigreload columns run"
            " the same code.")
        note += (f" Entries created or removed by others in the directories above the volumes"
                 f" during the window (each wakes sigreload, which watches them): "
                 f"{idle.get('events_above_volumes', '?')}.")
        md.append(f"### Idle cost over {idle.get('seconds', 60):.0f} s, nothing happening\n\n"
                  + table(["", *[lab for _, lab in keys]], rows) + "\n\n" + note.strip())
    B = R.get("busy")
    if B:
        rows = [[label, *[f(B[k][key]) for k in ("sigreload", "floor")]]
                for label, key, f in [("wakeups (voluntary context switches)", "wakeups",
                                       "{:,}".format),
                                      ("CPU time, schedstat", "run_ms", fmt_ms),
                                      ("involuntary context switches", "involuntary", str)]]
        md.append(f"### Idle with a busy directory above the volume: {B['creates']:,} files "
                  f"created and removed in {B['seconds']:.0f} s\n\n"
                  + table(["", "sigreload", "floor (watches the volume only)"], rows)
                  + f"\n\nsigreload's inotify queue overflowed {B['sigreload']['queue_overflows']}"
                  " times (its log).")
    return md


def memory_section(R):
    mem = R.get("memory")
    if not mem:
        return []
    last = max(mem["at"], key=int)
    rows = [[f"after {int(k):,} reloads" if k != "0" else "at start",
             f"{v['rss_kb'] / 1024:.2f} MiB", f"{v['hwm_kb'] / 1024:.2f} MiB",
             f"{v.get('rssanon_kb', 0) / 1024:.2f} MiB"]
            for k, v in sorted(mem["at"].items(), key=num) if k in ("0", "1000", last)]
    kind = "static binary" if mem.get("static") else "dynamically linked binary"
    short = ""
    if mem.get("reloads", int(last)) < mem.get("reloads_asked", 0):
        short = (f"; stopped after {mem['reloads']:,} of {mem['reloads_asked']:,}, when the "
                 "time budget ran out (`--mem-budget`)")
    return [f"### Memory of sigreload ({kind}): {mem['rules']} rules, {mem['files']:,} files, "
            f"{mem['signals']:,} signals for {mem.get('reloads', int(last)):,} updates "
            f"({mem['missed']} missed) in {mem['seconds']:.1f} s, "
            f"{fmt_ms(mem['cpu']['ms_per_update'])} CPU each{short}\n\n"
            + table(["", "VmRSS", "VmHWM", "of it anonymous (RssAnon)"], rows)]


def hash_section(R):
    h = R.get("hash")
    if not h:
        return []
    o = h["tools"]["openssl dgst -sha256"]["mib_per_s"]
    rows = [[f"`{name}`", f"{t['best_s']:.3f} s", f"{t['mib_per_s']:,.0f} MiB/s",
             f"{100 * t['mib_per_s'] / o:.0f} %"] for name, t in h["tools"].items()]
    return [f"### SHA-256 of a {h['mib']} MiB file, page cache warm, best of 3 "
            f"(same digest: {'yes' if h['same_digest'] else 'NO'})\n\n"
            + table(["", "time", "throughput", "of openssl"], rows)]


def correctness_section(R):
    L = R.get("latency", {})
    cols = [("sigreload", L.get("sigreload")), ("sigreload (debounce 200 ms)",
                                                L.get("sigreload-debounce")),
            ("floor", L.get("floor")), (PEERS["inotify"], L.get("inotify")),
            (PEERS["poll1"], R.get("poll1")), (PEERS["poll30"], R.get("poll30"))]
    cols = [(k, c) for k, c in cols if c]
    if not cols:
        return []

    def corr(kind, key):
        return [("–" if get(c, kind, key) is None else f"{get(c, kind, key):.2f}")
                for _, c in cols]

    rows = [["real change: all signals", *corr("change", "signals_per_op")],
            ["real change: to the leader", *corr("change", "leader_per_op")],
            ["real change: to workers", *corr("change", "workers_per_op")],
            ["real change: before the swap (app reloads stale files)",
             *corr("change", "before_swap_per_op")],
            ["real change: missed (no signal after the swap)",
             *[str(get(c, "change", "missed")) for _, c in cols]],
            ["swap to identical content", *corr("identical", "signals_per_op")],
            ["touch", *corr("touch", "signals_per_op")],
            ["(operations: changes / identical / touches)",
             *[f"{get(c, 'change', 'n')} / {get(c, 'identical', 'n')} / {get(c, 'touch', 'n')}"
               for _, c in cols]]]
    return ["### Correctness per update (target: a master and 2 workers named `app`)\n\n"
            + table(["signals per …", *[k for k, _ in cols]], rows)]


# ---- goals ---------------------------------------------------------------------------------

def goals(R):
    """Rows [goal, measured, compared with, ratio, met] for every goal this run measured."""
    rows = []

    def row(name, measured, against, r, ok):
        rows.append([name, measured, against, r, "–" if ok is None else
                     ("met" if ok else "**missed**")])

    L = R.get("latency", {})
    sig, floor = L.get("sigreload"), L.get("floor")
    for q, k in (("p50", 2), ("p99", 3)):
        a, b = lat(sig, q), lat(floor, q)
        if a is not None and b:
            row(f"latency {q} ≤ {k}× the floor (debounce 0, {L.get('pod_processes')}-process "
                "pod)", fmt_ms(a), f"floor {fmt_ms(b)}", times(a, b), a <= k * b)
    if cpu(sig) is not None:
        row("CPU per update ≤ 0.15 ms in that pod", fmt_ms(cpu(sig)), "0.15 ms",
            times(cpu(sig), 0.15), cpu(sig) <= 0.15)
    S = R.get("scale", {})
    rules = S.get("rules", {})
    big = max(rules, key=int, default=None)
    if big and "1" in rules and big != "1":
        a, b = cpu(rules[big]), cpu(rules["1"])
        row(f"{int(big)} rules (each its own volume) ≤ 1.5× one rule, CPU per update",
            fmt_ms(a), f"1 rule {fmt_ms(b)}", times(a, b), a <= 1.5 * b)
    paths = S.get("paths", {})
    if paths:
        k = max(paths, key=lambda x: tuple(int(v) for v in x.split("x")))
        a = cpu(paths[k])
        row(f"{k.replace('x', ' rules × ')} paths ≤ 5 ms CPU per update", fmt_ms(a), "5 ms",
            times(a, 5), a <= 5)
    files = S.get("files", {})
    ks = sorted(int(k) for k in files)
    if len(ks) >= 3 and ks[0] == 1:
        def per_file(k):  # the cost of the files beyond the first
            return (cpu(files[str(k)]["updated"]) - cpu(files["1"]["updated"])) / (k - 1)
        a, b = per_file(ks[-1]), per_file(ks[-2])
        row(f"CPU per update grows at most linearly with the rule's files: per file at "
            f"{ks[-1]:,} ≤ 1.5× at {ks[-2]:,}", f"{1000 * a:.2f} µs a file",
            f"{1000 * b:.2f} µs a file", times(a, b), a <= 1.5 * b)
        a, b = cpu(files[str(ks[-1])]["other"]), cpu(files["1"]["other"])
        row(f"…and not with other rules' files: a 4-file rule next to {ks[-1]:,} files ≤ 1.5× "
            "next to 1 (1.5: the noise allowed)", fmt_ms(a), f"next to 1 file {fmt_ms(b)}",
            times(a, b), a <= 1.5 * b)
    procs = S.get("procs", {})
    if len(procs) >= 2:
        P = sorted(procs, key=int)
        s0, sn = procs[P[0]]["scan"], procs[P[-1]]["scan"]
        ms = sn["match"]["median_ms"] - s0["match"]["median_ms"]
        ps = sn["pgrep"]["median_ms"] - s0["pgrep"]["median_ms"]
        if ms > 0:
            row(f"scan ≥ 10× faster than `pgrep -x` on {int(P[-1]):,} processes", fmt_ms(ms),
                f"pgrep {fmt_ms(ps)}", times(ps, ms), ps >= 10 * ms)
    sc = get(R, "scrapes", "scans")
    if sc:
        allowed = int(sc["seconds"]) + 1  # at most one a second: one at each end of the window
        row(f"at most one /proc scan a second for /metrics, {R['scrapes']['scrapers']} "
            f"scrapers, {R['scrapes']['processes']:,} processes",
            f"{sc['scans']} scans in {sc['seconds']:.1f} s", f"≤ {allowed}",
            times(sc["scans"], allowed), sc["scans"] <= allowed)
    B = R.get("busy")
    if B:
        a, b = B["sigreload"]["wakeups"], B["floor"]["wakeups"]
        row(f"idle with a busy parent directory: wakeups as few as inotify allows "
            f"({B['seconds']:.0f} s of churn)",
            f"{a:,} wakeups, {fmt_ms(B['sigreload']['run_ms'])} CPU", f"floor {b:,} wakeups",
            times(a, b) if b else ("=" if a == 0 else "∞×"), a <= b)
    idle = R.get("idle", {})
    for k in ("sigreload", "sigreload-metrics"):
        if k in idle:
            i, on = idle[k], "on" if "metrics" in k else "off"
            row(f"zero wakeups and zero CPU while idle (metrics {on})",
                f"{i['wakeups']} wakeups, {i['run_ms']:.3f} ms CPU in {i['seconds']:.0f} s", "0",
                "", i["wakeups"] == 0 and i["run_ms"] == 0 and i["cpu_ms"] == 0)
    mem = R.get("memory")
    if mem:
        at = mem["at"]
        last = max(at, key=int)
        h = at[last]["hwm_kb"]
        static = mem.get("static")
        row(f"VmHWM ≤ 1.5 MiB, static binary, {mem['rules']} rules × "
            f"{mem['files'] // mem['rules']} files",
            f"{h / 1024:.2f} MiB" + ("" if static else " (dynamically linked: not the goal's "
                                                       "binary)"),
            "1.5 MiB", times(h, 1536), (h <= 1536) if static else None)
        if "1000" in at and last != "1000":
            a, b = at[last], at["1000"]
            flat = a["hwm_kb"] <= b["hwm_kb"] and a["rss_kb"] <= b["rss_kb"]
            whole = int(last) >= mem.get("reloads_asked", int(last))
            row(f"no growth from 1,000 to {mem.get('reloads_asked', int(last)):,} reloads",
                f"VmHWM {b['hwm_kb']} → {a['hwm_kb']} KiB, VmRSS {b['rss_kb']} → "
                f"{a['rss_kb']} KiB" + ("" if whole else f" (stopped at {int(last):,})"),
                "at 1,000", times(a["hwm_kb"], b["hwm_kb"]),
                flat if whole or not flat else None)
    h = get(R, "hash", "tools")
    if h:
        a, b = h["sigreload hash"]["mib_per_s"], h["openssl dgst -sha256"]["mib_per_s"]
        row("SHA-256 ≥ 95 % of `openssl dgst -sha256` (an earlier goal)", f"{a:,.0f} MiB/s",
            f"openssl {b:,.0f} MiB/s", times(a, b), a >= 0.95 * b)
    return rows


def goals_section(R):
    rows = goals(R)
    if not rows:
        return []
    met = sum(r[-1] == "met" for r in rows)
    missed = sum(r[-1] != "met" and r[-1] != "–" for r in rows)
    return [f"### Goals (issue 11): {met} met, {missed} missed\n\n"
            + table(["goal", "measured", "compared with", "ratio", ""], rows)]


def report(R):
    """The whole run as markdown: header, tables, pictures, goals."""
    md = [header(R)]
    for section in (latency_section, syscalls_section, scaling_section, scrapes_section,
                    idle_section, memory_section, hash_section, correctness_section):
        md += section(R)
    if R.get("images"):
        md.append("Pictures: " + ", ".join(R["images"]))
    md += goals_section(R)
    return "\n\n".join(md)
