"""Search under a hardware limit on NAS-Bench-201: best test accuracy found against the limit.

This script shows how DSM-NAS and the baselines do when centers and answers must stay within
`METRIC <= LIMIT` (the table's `latency_s`, `params_mb` or `flops_m`), for a few limits, with
the best architecture in the table under each limit as the ceiling.

How to run (the full table from ../shared; every comparison is a `dsmnas compare` run with
`--limit`, kept in OUT/<metric>-<limit>/, so an interrupted run resumes with --resume):

    python benchmarks/bench_limits.py --table ../shared/data/nb201/nb201.csv.gz \
        --metric latency_s --limits 0.0125,0.015,0.02 --seeds 30 --out runs/limits

Results to expect: OUT/limits.md (per limit and method: the answers' test accuracy on the
three datasets, mean ± std, Welch p against dsm, and the ceilings: the best architecture in the
table within the limit, and the one a perfect validation-only search would answer) and
OUT/limits.png (CIFAR-10).
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

from dsmnas.envs.benchmarks import load_nb201  # noqa: E402
from dsmnas.experiments.compare import plan_compare, run_compare  # noqa: E402
from dsmnas.trainables.ray_utils import ensure_ray  # noqa: E402

METHODS = "dsm,random,evolution,local,reinforce,ppo-flat"


DATASETS = ("cifar10", "cifar100", "ImageNet16-120")


def ceiling(table: str, metric: str, limit: float, search: str = "cifar10") -> dict:
    """Within the limit (the metric as the search counts it, on `search`): how many
    architectures, and per test dataset the best test accuracy there and the test accuracy of
    the architecture a perfect validation-only search would answer (best validation)."""
    data = load_nb201(table)
    ok = data.metrics[metric][search] <= limit
    val = data.val_acc[search]
    best_val = np.flatnonzero(ok)[np.argmax(val[ok])]
    out = {"n_within": int(ok.sum())}
    for ds in DATASETS:
        test = data.test_acc[ds]
        out[f"ceiling_{ds}"] = float(test[ok].max())
        out[f"best_val_arch_{ds}"] = float(test[best_val])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True)
    p.add_argument("--dataset", default="cifar10", help="the searched dataset (its validation "
                   "accuracy is the reward, its metric is limited)")
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
            "table": args.table, "dataset": args.dataset, "limits": {args.metric: limit}})
        folder = out / f"{args.metric}-{limit:g}"
        runs = run_compare(plan, folder, resume=args.resume or (folder / "runs.csv").exists())
        ok = runs[runs.status == "ok"]
        ref = ok[ok.method == "dsm"]
        top = ceiling(args.table, args.metric, limit, args.dataset)
        for method, g in ok.groupby("method", sort=False):
            row = {"limit": limit, "method": method, "n": len(g), "val": g.val_acc.mean(), **top}
            for ds in DATASETS:
                t = g[f"test_acc_{ds}"].to_numpy(float)
                r = ref[f"test_acc_{ds}"].to_numpy(float)
                row[f"test_{ds}"], row[f"std_{ds}"] = t.mean(), t.std(ddof=1)
                row[f"p_{ds}"] = (stats.ttest_ind(t, r, equal_var=False).pvalue
                                  if method != "dsm" and len(t) > 1 and len(r) > 1
                                  else float("nan"))
            rows.append(row)
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "limits.csv", index=False)
    lines = [f"| {args.metric} <= | method | seeds | val | CIFAR-10 | CIFAR-100 | "
             f"ImageNet16-120 | p vs dsm (C10 / C100 / IN16) |",
             "|---|---|---|---|---|---|---|---|"]
    for limit, g in table.groupby("limit", sort=False):
        for r in g.to_dict("records"):
            p_txt = " / ".join("–" if np.isnan(r[f"p_{ds}"]) else f"{r[f'p_{ds}']:.2g}"
                               for ds in DATASETS)
            tests = " | ".join(f"{r[f'test_{ds}']:.2f} ± {r[f'std_{ds}']:.2f}" for ds in DATASETS)
            lines.append(f"| {limit:g} | {r['method']} | {r['n']} | {r['val']:.2f} | {tests} | "
                         f"{p_txt} |")
        r = g.iloc[0]
        lines.append(f"| {limit:g} | *best in the table within the limit* ({r.n_within:,} "
                     f"archs) | | | " + " | ".join(f"{r[f'ceiling_{ds}']:.2f}" for ds in DATASETS)
                     + " | |")
        lines.append(f"| {limit:g} | *best-validation architecture within it* | | | "
                     + " | ".join(f"{r[f'best_val_arch_{ds}']:.2f}" for ds in DATASETS) + " | |")
    (out / "limits.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for i, (method, g) in enumerate(table.groupby("method", sort=False)):
        ax.errorbar(g.limit * (1 + 0.01 * (i - 2.5)), g[f"test_{args.dataset}"],
                    yerr=g[f"std_{args.dataset}"], marker="o",
                    capsize=3, label=method)
    ceil = table.drop_duplicates("limit")
    ax.plot(ceil.limit, ceil[f"ceiling_{args.dataset}"], "k--",
            label="best in the table within the limit")
    ax.set_xlabel(f"limit on {args.metric}")
    ax.set_ylabel(f"{args.dataset} test accuracy of the answer (%)")
    ax.set_title(f"NAS-Bench-201 ({args.dataset}) under a hardware limit (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(out / "limits.png", dpi=120)
    print(f"wrote {out / 'limits.md'}, {out / 'limits.csv'}, {out / 'limits.png'}")


if __name__ == "__main__":
    main()
