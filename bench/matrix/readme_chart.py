#!/usr/bin/python3
"""The README's chart: wake-up latency and CPU while waiting, this project's
Python binding against the pure-Python filelock, from a benchmark matrix run.

    bash bench/matrix.sh build --parts wakeup,cpu --out /tmp/mx
    /usr/bin/python3 bench/matrix/readme_chart.py /tmp/mx/matrix.tsv docs/img/wakeup-cpu.png

Reads matrix.tsv (part, case, lang, metric, value, unit); plots with
matplotlib (Debian: python3-matplotlib). Fails, naming it, when a case the
chart needs is missing from the TSV.
"""

from __future__ import annotations

import argparse
import csv
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OURS, PURE = "#1f77b4", "#d62728"

# (label on the chart, case in matrix.tsv); the wake-up cases are the ones
# with a random 2-52 ms pause, fair to a poller.
WAKE = [
    ("ours\nFileLock\nforever", "Python ours: FileLock, wait forever, pause 2-52 ms"),
    ("ours\nFileLock\ntimeout=10", "Python ours: FileLock, timeout=10, pause 2-52 ms"),
    ("ours\nSoftFileLock\ntimeout=10", "Python ours: SoftFileLock, timeout=10, pause 2-52 ms"),
    ("pure\nFileLock\nforever", "pure-Python filelock: FileLock (polls every 50 ms), pause 2-52 ms"),
    ("pure\nSoftFileLock\ntimeout=10", "pure-Python filelock: SoftFileLock (polls every 50 ms), pause 2-52 ms"),
]
CPU = [
    ("ours\nFileLock\npoll 0.05 s", "Python ours: FileLock timeout=30, poll_interval=0.05 (default)"),
    ("ours\nFileLock\npoll 0", "Python ours: FileLock timeout=30, poll_interval=0"),
    ("ours\nSoftFileLock\npoll 0", "Python ours: SoftFileLock timeout=30, poll_interval=0"),
    ("pure\nFileLock\npoll 0.05 s", "pure-Python filelock: FileLock, poll_interval=0.05 (default)"),
    ("pure\nFileLock\npoll 0", "pure-Python filelock: FileLock, poll_interval=0"),
    ("pure\nSoftFileLock\npoll 0", "pure-Python filelock: SoftFileLock, poll_interval=0"),
]


def load(path: str) -> dict[tuple[str, str, str], float]:
    with open(path, newline="") as fh:
        return {(r["part"], r["case"], r["metric"]): float(r["value"])
                for r in csv.DictReader(fh, dialect="excel-tab")}


def need(data: dict, part: str, case: str, metric: str) -> float:
    try:
        return data[(part, case, metric)]
    except KeyError:
        sys.exit(f"readme_chart.py: {part} / {case} / {metric} is not in the TSV "
                 "(run bench/matrix.sh with --parts wakeup,cpu)")


def bars(ax, labels, values, colors, fmt):
    x = range(len(values))
    ax.bar(x, values, color=colors, width=0.65)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(axis="y", which="both", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for i, v in zip(x, values):
        ax.annotate(fmt(v), (i, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tsv", help="matrix.tsv of a bench/matrix.sh run with the wakeup and cpu parts")
    ap.add_argument("png", help="the chart to write")
    args = ap.parse_args()
    data = load(args.tsv)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    colors = lambda rows: [PURE if label.startswith("pure") else OURS for label, _ in rows]  # noqa: E731

    wake = [need(data, "wakeup", case, "median") / 1000.0 for _, case in WAKE]
    bars(left, [label for label, _ in WAKE], wake, colors(WAKE),
         lambda v: f"{v * 1000:.0f} µs" if v < 1 else f"{v:.0f} ms")
    left.set_ylabel("ms (log scale)")
    left.set_title("Wake-up after the holder releases\n(median; lower is better)", fontsize=10)

    cpu = [max(need(data, "cpu", case, "median"), 0.001) for _, case in CPU]
    bars(right, [label for label, _ in CPU], cpu, colors(CPU), lambda v: f"{v:.3g}")
    right.set_ylabel("ms of CPU per s (log scale)")
    right.set_title("CPU burnt while waiting\n(median; lower is better)", fontsize=10)

    fig.suptitle("Python: this project (blue) vs the pure-Python filelock (red)", fontsize=11)
    fig.tight_layout()
    fig.savefig(args.png)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
