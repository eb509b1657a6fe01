"""Searches over N parallel workers on NAS-Bench-201 (README, "Parallel workers"): anytime
validation accuracy against simulated time, and final test accuracy, for N = 1, 4, 16.

How to run (from the repository root; the shared table is needed for test accuracy):
    .venv/bin/python benchmarks/bench_workers.py [--table PATH] [--seeds 100]
        [--workers 1,4,16] [--methods dsm-sync,dsm-async,random,evolution,local] [--single dsm]
        [--budget 25000]
        [--out runs/workers] [--resume] [--from-runs DIR]

Every (method, N) is one variant `METHOD-N<N>` of one `dsmnas compare` (seeds 0..seeds-1)
with `EnvConfig.workers = N` (the `--single` methods, e.g. the paper's `dsm`, with N = 1 only,
as a reference: `dsm-sync` at N = 1 is the same algorithm) and the same total compute: a
simulated budget of `budget / N` seconds of makespan, i.e. `budget` worker-seconds for every
N. Outputs in OUT: `runs/` (everything `dsmnas compare` writes), `workers.md` (final
accuracies, p-values against the same method with one worker; then the mean best validation
accuracy found by the times budget / N) and `workers_anytime.png` (one panel per method: mean
best-so-far validation accuracy against simulated time, log scale, one line per N; a last
panel with every method at the largest N).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_TABLE = ROOT.parent / "shared/data/nb201/nb201.csv.gz"


def label(method: str, workers: int) -> str:
    return f"{method}-N{workers}"


def variants(methods, workers, budget_s, single=()):
    from dsmnas.experiments.settings import MethodSpec

    return [MethodSpec(label(m, n), m, env={"workers": n, "budget_s": budget_s / n})
            for m in [*single, *methods] for n in (workers[:1] if m in single else workers)]


def workers_table(runs, methods, workers, budget_s, single=()):
    """One row per (method, N): seeds, the mean ± std of val and every test accuracy, their
    Welch p against the same method with the first N, queries and makespan (the `single`
    methods: their first-N row only)."""
    import pandas as pd

    from dsmnas.experiments import report

    ok = report.finished(runs)
    tests = report.test_columns(runs)
    rows = []
    for m in [*single, *methods]:
        ref = ok[ok["method"] == label(m, workers[0])]
        for n in (workers[:1] if m in single else workers):
            mine = ok[ok["method"] == label(m, n)]
            row = {"method": m, "workers": n, "budget_s": budget_s / n, "n": len(mine)}
            for col in ["val_acc", *tests]:
                v = mine[col].astype(float)
                row[col] = v.mean()
                row[f"{col}_std"] = v.std(ddof=1)
                if col in tests:
                    row[f"{col}_p"] = (float("nan") if n == workers[0]
                                       else report.welch_p(mine[col], ref[col]))
            row["queries"] = mine["queries"].mean()
            row["makespan_s"] = mine["sim_time_s"].mean()
            rows.append(row)
    return pd.DataFrame(rows)


def markdown(table, tests) -> str:
    names = {c: c[len("test_acc_"):] for c in tests}
    head = ("| method | N | budget (s, makespan) | seeds | val | "
            + " | ".join(names.values()) + " | p vs N=1 | queries | makespan (s) |")
    lines = [head, "|" + "---|" * (8 + len(tests))]
    for r in table.to_dict("records"):
        p = " / ".join("–" if r[f"{c}_p"] != r[f"{c}_p"] else f"{r[f'{c}_p']:.2g}"
                       for c in tests)
        lines.append(
            f"| {r['method']} | {r['workers']} | {r['budget_s']:,.0f} | {r['n']} | "
            f"{r['val_acc']:.2f} ± {r['val_acc_std']:.2f} | "
            + " | ".join(f"{r[c]:.2f} ± {r[c + '_std']:.2f}" for c in tests)
            + f" | {p} | {r['queries']:.1f} | {r['makespan_s']:,.0f} |")
    return "\n".join(lines) + "\n"


def mean_best_so_far(histories, lab: str, grid):
    """Mean over the seeds of variant `lab` of the best validation accuracy so far at each
    point of `grid` (simulated seconds)."""
    import numpy as np

    from dsmnas.experiments.report import best_so_far_on_grid

    return np.nanmean(np.vstack([best_so_far_on_grid(h, grid) for (name, _), h in
                                 histories.items() if name == lab]), axis=0)


def anytime_markdown(histories, methods, workers, budget_s, single=()) -> str:
    """Mean best-so-far validation accuracy (%) by the simulated times budget / N (one
    column per N, earliest first): what N workers had found by then (a search that ended
    earlier holds its best)."""
    import numpy as np

    times = np.array(sorted(budget_s / n for n in workers))
    lines = ["| method | N | " + " | ".join(f"val by {t:,.0f} s" for t in times) + " |",
             "|---|---|" + "---|" * len(times)]
    for m in [*single, *methods]:
        for n in (workers[:1] if m in single else workers):
            means = mean_best_so_far(histories, label(m, n), times)
            lines.append(f"| {m} | {n} | " + " | ".join(f"{v:.2f}" for v in means) + " |")
    return "\n".join(lines) + "\n"


def plot(histories, methods, workers, path: Path, single=()) -> Path:
    """One panel per method (a line per N, the `single` references dashed) and a last panel
    with every method at the largest N; three panels a row."""
    import math
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    warnings.simplefilter("ignore", RuntimeWarning)  # grid points before a run's first answer

    end = max(h["sim_time_s"].max() for h in histories.values())
    grid = np.geomspace(30.0, end, 300)

    def mean_curve(lab):
        return mean_best_so_far(histories, lab, grid)

    cols = 3
    rows = math.ceil((len(methods) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), sharey=True,
                             squeeze=False, layout="constrained")
    panels = list(axes.flat)
    lows, highs = [], []
    for ax, m in zip(panels, methods):
        for i, n in enumerate(workers):
            mean = mean_curve(label(m, n))
            ax.plot(grid, mean, color=f"C{i}", lw=1.8, label=f"N = {n}")
            lows.append(np.nanpercentile(mean, 50))
            highs.append(np.nanmax(mean))
        for ref in single:  # the single-N references, dashed, in every panel
            ax.plot(grid, mean_curve(label(ref, workers[0])), color="grey", ls="--", lw=1.2,
                    label=f"{ref}, N = {workers[0]}")
        ax.set_title(m)
    last = panels[len(methods)]
    for i, m in enumerate([*single, *methods]):
        n = workers[0] if m in single else workers[-1]
        last.plot(grid, mean_curve(label(m, n)), color=f"C{i + len(workers)}", lw=1.6,
                  label=f"{m}, N = {n}")
    last.set_title(f"every method at N = {workers[-1]}")
    for ax in panels[len(methods) + 1:]:
        ax.set_visible(False)
    for ax in panels[:len(methods) + 1]:
        ax.set_xscale("log")
        ax.set_xlabel("simulated time (s, makespan)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right", fontsize=8)
    for row in axes:
        row[0].set_ylabel("best val. accuracy so far (%)")
    axes[0][0].set_ylim(min(lows), max(highs) + 0.3)
    fig.suptitle("N parallel workers, the same worker-seconds for every N (mean over seeds)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--workers", default="1,4,16")
    p.add_argument("--methods", default="dsm-sync,dsm-async,random,evolution,local")
    p.add_argument("--single", default="dsm", help="methods run with the first N only")
    p.add_argument("--budget", type=float, default=25_000.0,
                   help="worker-seconds per search (the makespan budget is this / N)")
    p.add_argument("--out", default=str(ROOT / "runs" / "workers"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--from-runs", metavar="DIR", help="tables and plot from a finished run")
    args = p.parse_args()

    import pandas as pd

    from dsmnas.experiments import report
    from dsmnas.experiments.compare import plan_compare, run_compare

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    single = [m.strip() for m in args.single.split(",") if m.strip()]
    workers = [int(n) for n in args.workers.split(",")]
    out = Path(args.out)
    if args.from_runs:
        runs = pd.read_csv(Path(args.from_runs) / "runs.csv")
        folder = Path(args.from_runs)
    else:
        plan = plan_compare(variants(methods, workers, args.budget, single), args.seeds,
                            env={"table": args.table}, population=1)
        runs = run_compare(plan, out / "runs", reference=label([*single, *methods][0], workers[0]),
                           resume=args.resume)
        folder = out / "runs"
    histories = report.load_histories(runs, folder / "histories")
    table = workers_table(runs, methods, workers, args.budget, single)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "workers.csv", index=False)
    text = (markdown(table, report.test_columns(runs)) + "\n"
            + anytime_markdown(histories, methods, workers, args.budget, single))
    (out / "workers.md").write_text(text)
    plot(histories, methods, workers, out / "workers_anytime.png", single)
    print(text)


if __name__ == "__main__":
    main()
