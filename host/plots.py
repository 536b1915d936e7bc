"""Pictures of runs and board builds (`bpfpga run --plot`, `bpfpga board report --plot`).

matplotlib is optional (the ``plot`` extra, which ``make setup`` installs); it is imported
here only, with the Agg backend (no display needed), and its absence is one line of error.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from bpfpga.errors import BpfpgaError

VERDICT_ORDER = ("ABORTED", "DROP", "PASS", "TX", "REDIRECT", "ERROR")
VERDICT_COLOURS = {"ABORTED": "#d62728", "DROP": "#7f7f7f", "PASS": "#2ca02c",
                   "TX": "#1f77b4", "REDIRECT": "#9467bd", "ERROR": "#000000"}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise BpfpgaError("--plot needs matplotlib: pip install -e '.[plot]' (make setup "
                          "installs it)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, plt, path) -> Path:
    path = Path(path)
    try:
        fig.savefig(path, dpi=100, format="png")
    except OSError as e:
        raise BpfpgaError(f"{path}: cannot write the plot: {e.strerror}") from None
    finally:
        plt.close(fig)
    return path


def run_metric(target: str, rows: list[dict]) -> tuple[str, str] | None:
    """(row field, axis label) of what a run measured per packet: cycles on the engine,
    instructions on the reference machine, ns on the kernel when timed."""
    for field, label in (("cycles", "cycles per packet"), ("insns", "instructions per packet"),
                         ("kernel_ns", "kernel ns per packet")):
        if target == "ref" and field == "cycles":
            continue
        if any(field in r for r in rows):
            return field, label
    return None


def run_plot(path, target: str, rows: list[dict], title: str = "") -> Path:
    """`bpfpga run`'s rows (one dict a packet: verdict, cycles / insns / kernel_ns) as a PNG:
    the measure per packet over the run and its histogram, and the verdict mix."""
    plt = _pyplot()
    metric = run_metric(target, rows)
    ncols = 3 if metric else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 4), squeeze=False)
    axes = axes[0]
    if metric:
        field, label = metric
        ax = axes[0]
        for v in VERDICT_ORDER:
            pts = [(r["packet"], r[field]) for r in rows if field in r and
                   r.get("verdict", "ERROR") == v]
            if pts:
                ax.scatter([p for p, _ in pts], [y for _, y in pts], s=6, label=v,
                           color=VERDICT_COLOURS[v])
        ax.set_xlabel("packet")
        ax.set_ylabel(label)
        ax.set_title(f"{label} over the run")
        ax.legend(fontsize="small", markerscale=2)
        vals = [r[field] for r in rows if field in r]
        ax = axes[1]
        ax.hist(vals, bins=min(50, max(1, len(set(vals)))), color="#1f77b4")
        ax.set_xlabel(label)
        ax.set_ylabel("packets")
        mean = sum(vals) / len(vals)
        ax.axvline(mean, color="#d62728", linestyle="--", label=f"mean {mean:.1f}")
        ax.legend(fontsize="small")
        ax.set_title("histogram")
    mix = Counter(r.get("verdict", "ERROR") for r in rows)
    ax = axes[-1]
    names = [v for v in VERDICT_ORDER if mix.get(v)]
    bars = ax.bar(names, [mix[v] for v in names], color=[VERDICT_COLOURS[v] for v in names])
    ax.bar_label(bars)
    ax.set_ylabel("packets")
    ax.set_title("verdicts")
    fig.suptitle(title or f"{len(rows)} packets on {target}")
    fig.tight_layout()
    return _save(fig, plt, path)


def report_plot(path, report: dict) -> Path:
    """A board build's report.json (gateware/flow.py) as a PNG: utilisation by resource
    (nextpnr's used / available) and Fmax per clock domain against its constraint."""
    plt = _pyplot()
    try:
        util = {k: v for k, v in report.get("nextpnr_utilisation", {}).items()
                if v.get("available")}
        fmax = report["fmax"]
    except (AttributeError, KeyError, TypeError):
        raise BpfpgaError("not a board build report (no fmax / nextpnr_utilisation: "
                          "gateware/flow.py writes them)") from None
    fig, (au, at) = plt.subplots(1, 2, figsize=(12, max(3.0, 0.35 * max(len(util),
                                                                        len(fmax)) + 1.5)))
    names = sorted(util, key=lambda k: util[k]["used"] / util[k]["available"])
    pct = [100 * util[k]["used"] / util[k]["available"] for k in names]
    bars = au.barh(names, pct, color=["#d62728" if p > 100 else "#1f77b4" for p in pct])
    au.bar_label(bars, [f"{util[k]['used']:,} / {util[k]['available']:,}" for k in names],
                 fontsize="small", padding=2)
    au.axvline(100, color="#7f7f7f", linestyle="--")
    au.set_xlim(0, max([110.0] + [p * 1.35 for p in pct]))
    au.set_xlabel("% of the part")
    au.set_title(f"utilisation ({report.get('fpga', '?')})")
    doms = sorted(fmax)
    y = range(len(doms))
    ach = [fmax[d]["achieved_mhz"] for d in doms]
    con = [fmax[d]["constraint_mhz"] for d in doms]
    at.barh([i + 0.2 for i in y], ach, height=0.4, label="achieved",
            color=["#2ca02c" if a >= c else "#d62728" for a, c in zip(ach, con)])
    at.barh([i - 0.2 for i in y], con, height=0.4, label="constraint", color="#7f7f7f")
    at.set_yticks(list(y), doms)
    for i, a in zip(y, ach):
        at.text(a, i + 0.2, f" {a:.1f}", va="center", fontsize="small")
    at.set_xlim(0, 1.25 * max(ach + con + [1.0]))
    at.set_xlabel("MHz")
    at.set_title("Fmax per clock domain" + ("" if report.get("timing_met", True)
                                            else " (timing NOT met)"))
    at.legend(fontsize="small", loc="lower right")
    fig.suptitle(f"{report.get('title', report.get('board', '?'))}: engine "
                 f"{report.get('engine', '?')}, {report.get('cores', '?')} core(s)")
    fig.tight_layout()
    return _save(fig, plt, path)
