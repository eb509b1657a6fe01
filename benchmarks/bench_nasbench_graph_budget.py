"""How fast the cheap searchers close in on NAS-Bench-Graph's best validation accuracy: the
figures behind the space's default budget (validation accuracy only; no test score is read).

How to run:
    python benchmarks/bench_nasbench_graph_budget.py [--seeds 30] [--budgets 50,100,...]
        [--datasets cora,citeseer,...,proteins] [--methods random,local,evolution]
For every dataset, method and budget (charged queries, repeats included, as the default
protocol) it runs the platform's own searchers in-process over `--seeds` seeds and prints
the mean gap (regret) of the answer's validation accuracy to the best in the data, and the
share of seeds that found that best. A default budget should leave these cheap searchers
short of the best, so that better searchers have room to differ.

Results to expect: see the README, "NAS-Bench-Graph" (random search needs tens of thousands
of queries to find the best; at 200 queries it is 0.5-1.4 points short of it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks.nasbench_graph import DATASETS, PROTEINS, load_nasbench_graph
from dsmnas.trainables.methods import run_method


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--budgets", default="50,100,200,400,800,1600")
    p.add_argument("--datasets", default=",".join((*DATASETS, PROTEINS)))
    p.add_argument("--methods", default="random,local,evolution")
    args = p.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    t0 = time.perf_counter()
    print("| dataset | best val | method | " + " | ".join(f"{b} q" for b in budgets) + " |")
    print("|---|---|---|" + "---|" * len(budgets))
    for dataset in args.datasets.split(","):
        best = 100.0 * float(np.nanmax(load_nasbench_graph(dataset).val_perf))
        space = "nasbench-graph-proteins" if dataset == PROTEINS else "nasbench-graph"
        for method in args.methods.split(","):
            cells = []
            for budget in budgets:
                vals = np.array([
                    run_method(method, EnvConfig(space=space, dataset=dataset,
                                                 budget_queries=budget, seed=s)).val_acc
                    for s in range(args.seeds)
                ])
                hit = np.mean(np.isclose(vals, best))
                cells.append(f"{best - vals.mean():.2f} ({100 * hit:.0f} %)")
            print(f"| {dataset} | {best:.2f} | {method} | " + " | ".join(cells) + " |", flush=True)
    print(f"cells: mean regret in validation points (share of seeds that found the best); "
          f"{args.seeds} seeds; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
