"""Memory of long searches as Tune trials run them: resident set size against queries.

How to run:  python benchmarks/bench_memory.py [--case nb201|mobilenet|mobilenet-pop10]
             [--keep-chunks] [--table ../shared/data/nb201/nb201.csv.gz]
             [--predictor ../shared/models/ofa/acc_predictor.pth]

Each case runs in this process as a trial does (`trainables.live.reporting` around
`run_method` / `run_method_population`, one torch thread), with a reporter that, instead of
calling Tune, records the process's RSS at 100 milestones of the budget. It prints the RSS at
the first milestone with at least 100 queries (per search), at the end, the growth between,
and the peak. Cases:
  nb201            dsm, NAS-Bench-201 table, cifar10, seed 0, budget 790,000 s (~7,000 queries)
  mobilenet        dsm, MobileNet-like space, OFA's predictor, 10,000 queries, seed 0
  mobilenet-pop10  the same as a population of 10 searches (seeds 0-9) in one process
`--keep-chunks` keeps RLlib's per-episode metric chunks (0.3's behaviour, before
`trainables.search.forget_episode_chunks`). Target (issue 22): a lone search grows < 100 MB
from its first hundred queries to its end; the population fits in 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", default="nb201", choices=("nb201", "mobilenet", "mobilenet-pop10"))
    p.add_argument("--keep-chunks", action="store_true")
    p.add_argument("--table", default=str(SHARED / "data/nb201/nb201.csv.gz"))
    p.add_argument("--predictor", default=str(SHARED / "models/ofa/acc_predictor.pth"))
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    from dsmnas.envs import EnvConfig
    from dsmnas.trainables import population, search
    from dsmnas.trainables.live import LiveSettings, TrialReporter, reporting
    from dsmnas.trainables.methods import run_method, run_method_population

    if args.keep_chunks:  # 0.3: RLlib keeps every chunk of the ongoing episode
        search.forget_episode_chunks = population.forget_episode_chunks = lambda algo: None
    if args.case == "nb201":
        env = EnvConfig(table=args.table, budget_s=790_000.0)
    else:
        env = EnvConfig(space="mobilenet", predictor=args.predictor)
    seeds = list(range(10)) if args.case == "mobilenet-pop10" else [0]
    samples = []

    def record(metrics, checkpoint=None):
        samples.append((metrics["queries"], rss_mb()))

    live = TrialReporter(LiveSettings(reports=100, checkpoint_reports=0), report=record)
    start = time.perf_counter()
    with reporting(live):
        if len(seeds) == 1:
            results = [run_method("dsm", EnvConfig.from_dict({**env.to_dict(), "seed": 0}), {})]
        else:
            results = run_method_population("dsm", env, {}, seeds)
    wall_s = time.perf_counter() - start
    end = rss_mb()
    first = next(((q, m) for q, m in samples if q >= 100), samples[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "case": args.case, "keep_chunks": args.keep_chunks, "searches": len(results),
        "queries_per_search": sum(r.queries for r in results) / len(results),
        "rss_mb_at_queries": [round(first[0]), round(first[1])], "rss_mb_end": round(end),
        "growth_mb": round(end - first[1]), "peak_mb": round(peak), "wall_s": round(wall_s),
    }))


if __name__ == "__main__":
    main()
