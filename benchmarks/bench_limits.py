"""Search under a hardware limit on NAS-Bench-201: best test accuracy found against the limit.

This script shows how DSM-NAS and the baselines do when centers and answers must stay within
`METRIC <= LIMIT` (the table's `latency_s`, `params_mb` or `flops_m`), for a few limits, with
the best architecture in the table under each limit as the ceiling.

How to run (the full table from ../shared; every comparison is a `dsmnas compare` run with
`--limit`, kept in OUT/<metric>-<limit>/, so an interrupted run resumes with --resume):

    python benchmarks/bench_limits.py --table ../shared/data/nb201/nb201.csv.gz \
        --metric latency_s --limits 0.0125,0.015,0.02 --seeds 30 --out runs/limits

Results to expect: OUT/limits.md (per limit and method: the answers' CIFAR-10 test accuracy,
mean ± std, Welch p against dsm, and the ceiling) and OUT/limits.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from envs.benchmarks import load_nb201  # noqa: E402
from experiments.compare import plan_compare, run_compare  # noqa: E402
from trainables.ray_utils import ensure_ray  # noqa: E402

METHODS = "dsm,random,evolution,local,reinforce,ppo-flat"


def ceiling(table: str, metric: str, limit: float, dataset: str = "cifar10") -> dict:
    """The best architecture within the limit by test accuracy, and the one a perfect
    validation-only search would answer (best validation accuracy), with its test."""
    data = load_nb201(table)
    ok = data.metrics[metric][dataset] <= limit
    test, val = data.test_acc[dataset], data.val_acc[dataset]
    best_val = np.flatnonzero(ok)[np.argmax(val[ok])]
    return {"n_within": int(ok.sum()), "best_test": float(test[ok].max()),
            "best_val_test": float(test[best_val])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True)
    p.add_argument("--metric", default="latency_s")
    p.add_argument("--limits", default="0.0125,0.015,0.02")
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--out", default="runs/limits")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()
    limits = [float(v) for v in args.limits.split(",")]
    out = Path(args.out)
    ensure_ray()
    rows = []
    for limit in limits:
        plan = plan_compare(args.methods, args.seeds, env={
            "table": args.table, "limits": {args.metric: limit}})
        folder = out / f"{args.metric}-{limit:g}"
        runs = run_compare(plan, folder, resume=args.resume or (folder / "runs.csv").exists())
        ok = runs[runs.status == "ok"]
        ref = ok[ok.method == "dsm"].test_acc_cifar10.to_numpy(float)
        top = ceiling(args.table, args.metric, limit)
        for method, g in ok.groupby("method", sort=False):
            t = g.test_acc_cifar10.to_numpy(float)
            p_val = (stats.ttest_ind(t, ref, equal_var=False).pvalue
                     if method != "dsm" and len(t) > 1 and len(ref) > 1 else float("nan"))
            rows.append({"limit": limit, "method": method, "n": len(t), "val": g.val_acc.mean(),
                         "test": t.mean(), "test_std": t.std(ddof=1), "p_vs_dsm": p_val, **top})
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "limits.csv", index=False)
    lines = [f"| {args.metric} <= | method | seeds | val | CIFAR-10 test | p vs dsm | "
             f"ceiling (best test within) | best-val arch's test | archs within |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        p_txt = "–" if np.isnan(r.p_vs_dsm) else f"{r.p_vs_dsm:.2g}"
        lines.append(f"| {r.limit:g} | {r.method} | {r.n} | {r.val:.2f} | {r.test:.2f} ± "
                     f"{r.test_std:.2f} | {p_txt} | {r.best_test:.2f} | {r.best_val_test:.2f} | "
                     f"{r.n_within:,} |")
    (out / "limits.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for i, (method, g) in enumerate(table.groupby("method", sort=False)):
        ax.errorbar(g.limit * (1 + 0.01 * (i - 2.5)), g.test, yerr=g.test_std, marker="o",
                    capsize=3, label=method)
    ceil = table.drop_duplicates("limit")
    ax.plot(ceil.limit, ceil.best_test, "k--", label="best in the table within the limit")
    ax.set_xlabel(f"limit on {args.metric}")
    ax.set_ylabel("CIFAR-10 test accuracy of the answer (%)")
    ax.set_title("NAS-Bench-201 under a hardware limit (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(out / "limits.png", dpi=120)
    print(f"wrote {out / 'limits.md'}, {out / 'limits.csv'}, {out / 'limits.png'}")


if __name__ == "__main__":
    main()
