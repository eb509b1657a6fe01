"""Search quality of the other RLlib agents (ppo, appo, ppo-flat) and of DSM-NAS+ (dsm-plus)
on NAS-Bench-201 under the paper's protocol (Table II).

How to run:
    python benchmarks/bench_agents.py [--methods ppo,appo,ppo-flat,dsm-plus] [--seeds 10]
        [--first-seed 0] [--table ../shared/data/nb201/nb201.csv.gz] [--budget 25000]
        [--out runs/agents] [--cpus 2] [--set KEY=VALUE ...] [--tag NAME] [--datasets D,...]
ppo, appo and ppo-flat search on cifar10 (reward val_acc_12ep, cost sim_cost_12ep_s, 25,000 s)
and are scored by the found architecture's 200-epoch test accuracy on cifar10, cifar100 and
ImageNet16-120; dsm-plus searches cifar100 and ImageNet16-120 (each from the final centers of
a cifar10 DSM-NAS search with the same seed, not charged) and is scored on its target
dataset. One search per (method, dataset, seed), each a Ray task on one CPU; every finished
run is appended to OUT/runs.csv at once, and runs already there (same tag) are skipped, so
an interrupted run resumes. `--set` settings (JSON values) go to every method named, and
`--tag` labels such variants in the CSV. `--datasets` makes the methods other than dsm-plus
search those datasets instead of cifar10 (e.g. `--methods dsm --datasets cifar100`: DSM-NAS
from random centers, the reference for dsm-plus); a search on a dataset other than cifar10
is scored on that dataset only. Prints mean ± std per method and dataset, and the
mean wall time per search (after Ray start-up; dsm-plus: the target search only, the
source search's wall time is in its own column).

Results to expect: see the README (filled from this script's output).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared/data/nb201/nb201.csv.gz"
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
SEARCH_DATASETS = {"dsm-plus": ("cifar100", "ImageNet16-120")}
"""Datasets searched per method (default: cifar10 only)."""
COLUMNS = (
    ["method", "tag", "dataset", "seed", "arch", "val_acc", "queries", "sim_time_s",
     "wall_time_s", "startup_s"]
    + [f"test_acc_{ds}" for ds in DATASETS]
    + [f"source_{k}" for k in ("arch", "val_acc", "queries", "sim_time_s", "wall_time_s")]
    + ["settings"]
)
"""One header for every method (dsm-plus fills the source_* columns), so rows can be
appended."""
PAPER = {
    "DSM-NAS": {"cifar10": "94.23 ± 0.22", "cifar100": "72.76 ± 0.80",
                "ImageNet16-120": "46.13 ± 0.67"},
    "DSM-NAS+": {"cifar100": "73.12 ± 0.61", "ImageNet16-120": "46.66 ± 0.52"},
}


def one_run(method: str, dataset: str, seed: int, table: str, budget_s: float,
            settings: dict, tag: str) -> dict:
    import torch

    from dsmnas.envs import EnvConfig
    from dsmnas.trainables.methods import run_method

    torch.set_num_threads(1)
    r = run_method(method, EnvConfig(table=table, dataset=dataset, seed=seed,
                                     budget_s=budget_s), settings)
    row = {"method": method, "tag": tag, "dataset": dataset, "seed": seed, "arch": r.arch,
           "val_acc": r.val_acc, "queries": r.queries, "sim_time_s": r.sim_time_s,
           "wall_time_s": r.wall_time_s, "startup_s": r.startup_s,
           "settings": json.dumps(settings, sort_keys=True)}
    row.update({f"test_acc_{k}": v for k, v in (r.test_acc or {}).items()})
    transfer = r.config.get("transfer")
    if transfer:
        row.update({f"source_{k}": transfer[f"source_{k}"]
                    for k in ("arch", "val_acc", "queries", "sim_time_s", "wall_time_s")})
    return row


def summarize(runs: pd.DataFrame) -> str:
    lines = ["| method | tag | searched on | seeds | cifar10 | cifar100 | ImageNet16-120 | "
             "queries | wall s/search |", "|---|---|---|---|---|---|---|---|---|"]
    for (method, tag, dataset), g in runs.groupby(["method", "tag", "dataset"], sort=False):
        cells = []
        for ds in DATASETS:
            col = g.get(f"test_acc_{ds}")
            # A search on cifar100 or ImageNet16-120 is scored on that dataset only.
            if col is None or (dataset != "cifar10" and ds != dataset):
                cells.append("–")
            else:
                cells.append(f"{col.mean():.2f} ± {col.std(ddof=1):.2f}")
        lines.append(f"| {method} | {tag} | {dataset} | {len(g)} | " + " | ".join(cells)
                     + f" | {g.queries.mean():.1f} | {g.wall_time_s.mean():.1f} |")
    lines.append("paper: " + "; ".join(
        f"{m}: " + ", ".join(f"{ds} {v}" for ds, v in row.items()) for m, row in PAPER.items()))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="ppo,appo,ppo-flat,dsm-plus")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--budget", type=float, default=25_000)
    p.add_argument("--out", default="runs/agents")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--tag", default="default")
    p.add_argument("--datasets", default="cifar10",
                   help="datasets searched by the methods other than dsm-plus")
    args = p.parse_args()
    settings = {}
    for item in args.sets:
        key, _, value = item.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value

    import ray

    from dsmnas.trainables.ray_utils import ensure_ray

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "runs.csv"
    done = (set(pd.read_csv(csv)[["method", "tag", "dataset", "seed"]].itertuples(index=False,
                                                                               name=None))
            if csv.exists() else set())
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    datasets = tuple(d.strip() for d in args.datasets.split(",") if d.strip())
    todo = [(m, ds, s) for m in methods for ds in SEARCH_DATASETS.get(m, datasets)
            for s in seeds if (m, args.tag, ds, s) not in done]
    ensure_ray(num_cpus=args.cpus)
    task = ray.remote(num_cpus=1, max_retries=2)(one_run)
    pending = [task.remote(m, ds, s, args.table, args.budget, settings, args.tag)
               for m, ds, s in todo]
    start = time.perf_counter()
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        row = ray.get(ready[0])
        pd.DataFrame([row], columns=COLUMNS).to_csv(
            csv, mode="a", header=not csv.exists(), index=False
        )
        n = len(todo) - len(pending)
        acc = row.get(f"test_acc_{row['dataset']}", float("nan"))
        print(f"[{n}/{len(todo)}] {row['method']} {row['dataset']} seed {row['seed']}: "
              f"test {acc:.2f}  wall {row['wall_time_s']:.1f} s  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    runs = pd.read_csv(csv)
    runs = runs[runs.method.isin(methods) & (runs.tag == args.tag) & runs.seed.isin(seeds)]
    print(summarize(runs))


if __name__ == "__main__":
    main()
