"""Search quality in the MobileNet-like (OFA) space with OFA's accuracy predictor as reward.

How to run:
    python benchmarks/bench_mobilenet.py --seeds 10 [--queries 10000] [--jobs 2]
        [--methods dsm,dsm-ofa,ofa-evolution,random,dsm-macs] [--predictor PATH]
        [--out runs/mobilenet]
The paper's mobile setting: OFA MobileNetV3 w1.2 space, resolution 224, at most 600M MACs,
10,000 predictor queries per search (every answered query charged, repeats included), the
same budget for every method:
- `dsm`: DSM-NAS with the paper's settings for this space (K=10, M=3, Adam lr 3e-4,
  entropy 1e-3, batch 1) from K random centers within the limit;
- `dsm-ofa`: DSM-NAS+, the same search started from OFA's ten published w1.2 networks
  (`../shared/models/ofa/specialized/`, listed below; their initial queries not charged);
- `ofa-evolution`: `ofa`'s own `EvolutionFinder` (population 100, 99 generations);
- `random`: uniform random subnets within the limit;
- `dsm-macs`: `dsm` whose proposals over the limit cost no query and are penalised
  (`trainables/variants.py`), not the paper's rule.
One Ray task (1 CPU) per (method, seed), `--jobs` at a time; each finished run is appended
to OUT/runs.csv at once and runs already there are skipped, so an interrupted benchmark
resumes. Prints and writes OUT/summary.md: predicted top-1 and MACs of the answers.

Results to expect: see the README's MobileNet table (filled from this script's output).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_PREDICTOR = SHARED / "models/ofa/acc_predictor.pth"
OFA_W12_NETS = (  # OFA's published MobileNetV3 w1.2 networks (first conv 24 channels)
    "flops-389M_top1-79.1_finetune-75", "flops-482M_top1-79.6_finetune-75",
    "flops-595M_top1-80.0_finetune-75", "note10_lat-30ms_top1-78.4_finetune-75",
    "note10_lat-41ms_top1-79.3_finetune-75", "note10_lat-50ms_top1-79.7_finetune-75",
    "note10_lat-64ms_top1-80.2_finetune-75", "pixel1_lat-79ms_top1-78.7_finetune-75",
    "pixel1_lat-132ms_top1-79.8_finetune-75", "pixel1_lat-143ms_top1-80.1_finetune-75",
)
METHODS = ("dsm", "dsm-ofa", "ofa-evolution", "random", "dsm-macs")


def one_run(method: str, seed: int, predictor: str, queries: int) -> dict:
    import torch

    from dsmnas.envs import EnvConfig
    from dsmnas.trainables.methods import run_method

    torch.set_num_threads(1)
    init = None
    if method == "dsm-ofa":
        init = tuple(str(SHARED / "models/ofa/specialized" / n) for n in OFA_W12_NETS)
    cfg = EnvConfig(space="mobilenet", predictor=predictor, budget_queries=queries, seed=seed,
                    init_centers=init)
    r = run_method("dsm" if method == "dsm-ofa" else method, cfg)
    j = r.to_json()
    return {"method": method, "seed": seed, "arch": r.arch, "val_acc": r.val_acc,
            "macs_m": j["macs_m"], "queries": r.queries, "distinct": r.history.arch.nunique(),
            "over_limit": int((r.history.macs_m > cfg.max_macs_m).sum()),
            "skipped_over_limit": r.config.get("skipped_over_limit", 0),
            "wall_time_s": r.wall_time_s}


def summarize(runs: pd.DataFrame) -> str:
    lines = ["| method | seeds | predicted top-1 (%) | best seed | MACs (M) | distinct queried "
             "| wall s |", "|---|---|---|---|---|---|---|"]
    for method in runs.method.unique():
        g = runs[runs.method == method]
        lines.append(
            f"| {method} | {len(g)} | {g.val_acc.mean():.2f} ± {g.val_acc.std(ddof=1):.2f} | "
            f"{g.val_acc.max():.2f} | {g.macs_m.mean():.0f} (max {g.macs_m.max():.0f}) | "
            f"{g.distinct.mean():.0f} | {g.wall_time_s.mean():.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--predictor", default=str(DEFAULT_PREDICTOR))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="runs/mobilenet")
    args = ap.parse_args()
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; allowed: {', '.join(METHODS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "runs.csv"
    done = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=["method", "seed"])
    have = set(zip(done.method, done.seed))
    todo = [(m, s) for s in range(args.first_seed, args.first_seed + args.seeds)
            for m in methods if (m, s) not in have]

    import ray

    from dsmnas.trainables.ray_utils import ensure_ray

    ensure_ray(num_cpus=args.jobs)
    task = ray.remote(num_cpus=1)(one_run)
    pending = {task.remote(m, s, args.predictor, args.queries): (m, s) for m, s in todo}
    t0 = time.perf_counter()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        m, s = pending.pop(ready[0])
        row = ray.get(ready[0])
        runs = pd.DataFrame([row])
        if csv.exists():  # rows of older versions may lack columns: rewrite, aligned
            runs = pd.concat([pd.read_csv(csv), runs], ignore_index=True)
        runs.to_csv(csv.with_suffix(".tmp"), index=False)
        csv.with_suffix(".tmp").replace(csv)
        print(f"[{time.perf_counter() - t0:6.0f} s] {m} seed {s}: {row['val_acc']:.2f} "
              f"at {row['macs_m']:.0f}M MACs ({row['wall_time_s']:.0f} s); {len(pending)} left",
              flush=True)
    table = summarize(pd.read_csv(csv))
    (out / "summary.md").write_text(
        f"{args.queries} predictor queries per search, resolution 224, <= 600M MACs (w1.2)\n\n"
        f"{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
