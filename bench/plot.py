"""The pictures of a benchmark run, written next to its JSON: the latency distribution of
sigreload against the floor and the peers, and the cost of an update against scale (rules,
files, processes, rules × paths). matplotlib from Debian (python3-matplotlib), no display."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

COLORS = {"sigreload": "#1f77b4", "floor": "#555555", "inotify": "#d62728", "poll1": "#ff7f0e",
          "poll30": "#9467bd", "debounce": "#17becf", "other": "#2ca02c"}


def ms_ticks(v, _pos):
    """1 ms, 0.1 ms, 10 s: tick labels a reader need not convert."""
    if v >= 1000:
        return f"{v / 1000:g} s"
    return f"{v:g} ms"


def count_ticks(v, _pos):
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def cdf(ax, values, label, color, style="-"):
    if not values:
        return
    v = sorted(values)
    n = len(v)
    ax.step(v, [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})",
            color=color, linestyle=style, linewidth=1.6)


def latency_png(R, path):
    L = R.get("latency") or {}
    series = [("sigreload", L.get("sigreload"), "sigreload, debounce 0", "-"),
              ("floor", L.get("floor"), "floor: bare inotify → kill(2)", "-"),
              ("inotify", L.get("inotify"), "inotifywait + pkill", "-"),
              ("debounce", L.get("sigreload-debounce"), "sigreload, default debounce 200 ms",
               "--"),
              ("poll1", R.get("poll1"), "poll 1 s (md5sum + pgrep)", "-"),
              ("poll30", R.get("poll30"), "poll 30 s", "-")]
    series = [s for s in series if s[1] and s[1].get("change", {}).get("latencies_ms")]
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    for key, res, label, style in series:
        cdf(ax, res["change"]["latencies_ms"], label, COLORS[key], style)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(ms_ticks))
    ax.set_xlabel("latency: `..data` rename → the app's signal handler runs (log scale)")
    ax.set_ylabel("fraction of updates (cumulative)")
    ax.set_ylim(0, 1.02)
    for q in (0.5, 0.99):
        ax.axhline(q, color="#bbbbbb", linewidth=0.8, zorder=0)
        ax.text(ax.get_xlim()[0], q, f" p{int(q * 100)}", va="bottom", fontsize=8, color="#777")
    ax.grid(True, which="major", axis="x", color="#eeeeee")
    ax.set_title(f"Reload latency, {L.get('pod_processes', '?')}-process pods, side by side "
                 "in one run")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def lat(res, q="p50"):
    return ((res or {}).get("change") or {}).get("latency_ms", {}).get(q)


def cpu(res):
    return ((res or {}).get("cpu") or {}).get("ms_per_update")


def cost_panel(ax, xs, series, title, xlabel, goal=None, floor=None):
    """Cost lines on log-log axes: series is [(label, values, color, style)]; goal and floor
    are (value, label) for horizontal lines."""
    for label, ys, color, style in series:
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None and y > 0]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, label=label,
                    marker="o", markersize=4, linewidth=1.5)
    if goal:
        ax.axhline(goal[0], color="#2ca02c", linestyle=":", linewidth=1.2, label=goal[1])
    if floor and floor[0]:
        ax.axhline(floor[0], color=COLORS["floor"], linestyle="-.", linewidth=1, label=floor[1])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(count_ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(ms_ticks))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("per update (log scale)")
    ax.grid(True, which="major", color="#eeeeee")
    ax.legend(fontsize=7, loc="upper left")


def scaling_png(R, path):
    S = R.get("scale") or {}
    panels = [k for k in ("rules", "files", "procs", "paths") if S.get(k)]
    if not panels:
        return False
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4.4 * rows + 0.4), dpi=100, squeeze=False)
    axes = list(axes.flat)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    f = lat((R.get("latency") or {}).get("floor"))
    floor = (f, "floor latency p50 (bare inotify → kill)") if f else None
    for ax, key in zip(axes, panels):
        if key == "rules":
            items = sorted(S["rules"].items(), key=lambda kv: int(kv[0]))
            xs = [int(k) for k, _ in items]
            one = cpu(items[0][1]) if xs[0] == 1 else None
            cost_panel(ax, xs, [("CPU", [cpu(r) for _, r in items], COLORS["sigreload"], "-"),
                                ("latency p50", [lat(r) for _, r in items], COLORS["sigreload"],
                                 "--")],
                       "Rules, each on a 4-file volume of its own", "rules (log scale)",
                       (1.5 * one, "goal: 1.5 × one rule's CPU") if one else None, floor)
        elif key == "files":
            items = sorted(S["files"].items(), key=lambda kv: int(kv[0]))
            xs = [int(k) for k, _ in items]
            cost_panel(ax, xs, [
                ("CPU, update of the N-file rule", [cpu(r["updated"]) for _, r in items],
                 COLORS["sigreload"], "-"),
                ("latency p50, N-file rule", [lat(r["updated"]) for _, r in items],
                 COLORS["sigreload"], "--"),
                ("CPU, update of a 4-file rule beside it", [cpu(r["other"]) for _, r in items],
                 COLORS["other"], "-"),
                ("latency p50, 4-file rule", [lat(r["other"]) for _, r in items],
                 COLORS["other"], "--")],
                "Files per rule", "files in the rule's volume, N (log scale)", floor=floor)
        elif key == "procs":
            items = sorted(S["procs"].items(), key=lambda kv: int(kv[0]))
            xs = [int(k) for k, _ in items]
            cost_panel(ax, xs, [
                ("sigreload CPU", [cpu(r.get("sigreload")) for _, r in items],
                 COLORS["sigreload"], "-"),
                ("sigreload latency p50", [lat(r.get("sigreload")) for _, r in items],
                 COLORS["sigreload"], "--"),
                ("inotifywait + pkill latency p50", [lat(r.get("inotify")) for _, r in items],
                 COLORS["inotify"], "--"),
                ("one `pgrep -x app` (wall time)",
                 [r["scan"]["pgrep"]["median_ms"] for _, r in items], COLORS["floor"], ":")],
                "Processes in the pod", "processes (log scale)", floor=floor)
        else:
            grid = {}
            for k, r in S["paths"].items():
                nr, np_ = (int(x) for x in k.split("x"))
                grid.setdefault(nr, []).append((np_, r))
            series, xs = [], sorted({p for v in grid.values() for p, _ in v})
            palette = ["#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b"]
            for i, nr in enumerate(sorted(grid)):
                by, color = dict(grid[nr]), palette[i % len(palette)]
                name = f"{nr} rule{'s' if nr > 1 else ''}"
                series.append((f"{name}: CPU", [cpu(by.get(x)) for x in xs], color, "-"))
                series.append((f"{name}: latency p50", [lat(by.get(x)) for x in xs], color,
                               "--"))
            cost_panel(ax, xs, series, "Rules × paths (each path a file of the rule's volume)",
                       "paths per rule (log scale)", (5, "goal at the largest grid: 5 ms"), floor)
    fig.suptitle("Cost of one update against scale: sigreload's CPU (solid) and latency "
                 "(dashed), debounce 0", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_all(R, directory, stamp):
    """Writes the PNGs that this run has data for; returns their file names."""
    out = []
    for name, fn in (("latency", latency_png), ("scaling", scaling_png)):
        path = directory / f"{stamp}-{name}.png"
        if fn(R, path):
            out.append(path.name)
    return out
