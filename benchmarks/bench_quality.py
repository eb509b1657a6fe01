"""Search quality of DSM-NAS on NAS-Bench-201 under the paper's protocol (Table II).

How to run:
    python benchmarks/bench_quality.py --seeds 50 [--table ../shared/data/nb201/nb201.csv.gz]
        [--out runs/quality] [--cpus 2] [extra `dsmnas search` settings: --K --M --lr --entropy]
One search per seed (cifar10, reward val_acc_12ep, cost sim_cost_12ep_s, 25,000 s), each a
Ray task on one CPU. Every finished seed is appended to OUT/runs.csv at once, and seeds
already there are skipped, so an interrupted run resumes. Prints the mean +- std of the
found architectures' 200-epoch test accuracy per dataset, next to the paper's DSM-NAS row.

Results to expect: see the README's results table (filled from this script's output).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared/data/nb201/nb201.csv.gz"
PAPER = {"cifar10": "94.23 ± 0.22", "cifar100": "72.76 ± 0.80", "ImageNet16-120": "46.13 ± 0.67"}


def one_seed(seed: int, table: str, K: int, M: int, lr: float, entropy: float,
             budget_s: float) -> dict:
    from dsmnas.envs import EnvConfig
    from dsmnas.trainables.search import LearnerSettings, run_search

    r = run_search(
        EnvConfig(table=table, K=K, M=M, seed=seed, budget_s=budget_s),
        LearnerSettings(lr=lr, entropy=entropy),
        progress=None,
    )
    row = {"seed": seed, "arch": r.arch, "val_acc": r.val_acc, "queries": r.queries,
           "sim_time_s": r.sim_time_s, "wall_time_s": r.wall_time_s}
    row.update({f"test_acc_{k}": v for k, v in (r.test_acc or {}).items()})
    return row


def summarize(runs: pd.DataFrame) -> str:
    lines = [f"{len(runs)} seeds; queries {runs.queries.mean():.1f} per search; "
             f"wall {runs.wall_time_s.mean():.1f} s per search (after Ray start-up)",
             "| dataset | ours (test acc, mean ± std) | paper DSM-NAS |", "|---|---|---|"]
    for ds, paper in PAPER.items():
        col = runs[f"test_acc_{ds}"]
        lines.append(f"| {ds} | {col.mean():.2f} ± {col.std(ddof=1):.2f} | {paper} |")
    lines.append(f"mean best validation accuracy (val_acc_12ep): {runs.val_acc.mean():.3f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--out", default="runs/quality")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--K", type=int, default=4)
    p.add_argument("--M", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--entropy", type=float, default=7.5e-4)
    p.add_argument("--budget", type=float, default=25_000)
    args = p.parse_args()

    import ray

    from dsmnas.trainables.ray_utils import ensure_ray

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "runs.csv"
    done = set(pd.read_csv(csv).seed) if csv.exists() else set()
    todo = [s for s in range(args.first_seed, args.first_seed + args.seeds) if s not in done]
    ensure_ray(num_cpus=args.cpus)
    task = ray.remote(num_cpus=1, max_retries=2)(one_seed)
    pending = [task.remote(s, args.table, args.K, args.M, args.lr, args.entropy, args.budget)
               for s in todo]
    start = time.perf_counter()
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        row = ray.get(ready[0])
        pd.DataFrame([row]).to_csv(csv, mode="a", header=not csv.exists(), index=False)
        n = len(todo) - len(pending)
        print(f"[{n}/{len(todo)}] seed {row['seed']}: test cifar10 "
              f"{row.get('test_acc_cifar10', float('nan')):.2f}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    runs = pd.read_csv(csv)
    runs = runs[runs.seed.between(args.first_seed, args.first_seed + args.seeds - 1)]
    print(summarize(runs))


if __name__ == "__main__":
    main()
