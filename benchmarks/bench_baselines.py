"""Search quality of the baseline searchers on NAS-Bench-201 under the paper's protocol.

How to run:
    python benchmarks/bench_baselines.py --seeds 20 [--methods random,reinforce,...]
        [--table ../shared/data/nb201/nb201.csv.gz] [--budget 25000] [--out runs/baselines]
One search per (method, seed), one after the other in this process (cifar10, reward
val_acc_12ep, cost sim_cost_12ep_s, 25,000 s, each method's default settings). Every finished
run is appended to OUT/runs.csv at once, and runs already there are skipped, so an
interrupted run resumes. `random-mined` runs DSM-NAS inside, so Ray is started (1 CPU) when
it is listed. Prints the mean +- std of the answers' 200-epoch test accuracy per dataset,
next to the paper's rows.

Results to expect: see the README's results table (filled from this script's output).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared/data/nb201/nb201.csv.gz"
METHODS = ("random", "reinforce", "evolution", "local", "random-update", "random-mined")
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
PAPER = {  # Table II, test accuracy (%), mean ± std over 500 runs
    "Random Search": ("93.88 ± 0.27", "71.54 ± 1.04", "45.19 ± 1.06"),
    "REINFORCE": ("93.85 ± 0.37", "71.71 ± 1.09", "45.24 ± 1.18"),
    "DSM-NAS": ("94.23 ± 0.22", "72.76 ± 0.80", "46.13 ± 0.67"),
}


def one_run(method: str, seed: int, table: str, budget_s: float) -> dict:
    from dsmnas.envs import EnvConfig
    from dsmnas.trainables.methods import run_method

    r = run_method(method, EnvConfig(table=table, budget_s=budget_s, seed=seed))
    row = {"method": method, "seed": seed, "arch": r.arch, "val_acc": r.val_acc,
           "queries": r.queries, "distinct": r.history.arch.nunique(),
           "sim_time_s": r.sim_time_s, "wall_time_s": r.wall_time_s}
    row.update({f"test_acc_{k}": v for k, v in (r.test_acc or {}).items()})
    return row


def summarize(runs: pd.DataFrame) -> str:
    lines = ["| method | seeds | cifar10 | cifar100 | ImageNet16-120 | val_acc_12ep | queries "
             "(distinct) | wall s |", "|---|---|---|---|---|---|---|---|"]
    for method in runs.method.unique():
        g = runs[runs.method == method]
        accs = [f"{g[f'test_acc_{d}'].mean():.2f} ± {g[f'test_acc_{d}'].std(ddof=1):.2f}"
                for d in DATASETS]
        lines.append(
            f"| {method} | {len(g)} | {' | '.join(accs)} | {g.val_acc.mean():.2f} | "
            f"{g.queries.mean():.0f} ({g.distinct.mean():.0f}) | {g.wall_time_s.mean():.1f} |"
        )
    for name, accs in PAPER.items():
        lines.append(f"| paper: {name} | 500 | {' | '.join(accs)} | | | |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--budget", type=float, default=25_000)
    p.add_argument("--out", default="runs/baselines")
    args = p.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "runs.csv"
    done = set()
    if csv.exists():
        prev = pd.read_csv(csv)
        done = set(zip(prev.method, prev.seed))
    if "random-mined" in methods:
        from dsmnas.trainables.ray_utils import ensure_ray

        ensure_ray(num_cpus=1)
    start = time.perf_counter()
    for method in methods:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            if (method, seed) in done:
                continue
            row = one_run(method, seed, args.table, args.budget)
            pd.DataFrame([row]).to_csv(csv, mode="a", header=not csv.exists(), index=False)
            print(f"{method:14s} seed {seed:3d}  test c10 {row.get('test_acc_cifar10', float('nan')):.2f}"
                  f"  val {row['val_acc']:.3f}  queries {row['queries']}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    runs = pd.read_csv(csv)
    print(summarize(pd.concat([runs[runs.method == m] for m in methods])))


if __name__ == "__main__":
    main()
