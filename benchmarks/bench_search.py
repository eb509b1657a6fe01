"""Wall time and memory of one whole DSM-NAS search on NAS-Bench-201 (25,000 s budget).

How to run:  python benchmarks/bench_search.py [--table PATH] [--seeds 3]
Prints Ray start-up time, algorithm build time, the search's wall time after Ray is up,
time per iteration split into RLlib's timers (env sampling incl. the policy's forward pass,
learner update, the rest), and the process's peak memory. Pinned to one core.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared/data/nb201/nb201.csv.gz"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    t0 = time.perf_counter()
    from dsmnas.trainables.ray_utils import ensure_ray

    ensure_ray(num_cpus=1)
    ray_s = time.perf_counter() - t0
    print(f"ray.init (incl. imports): {ray_s:.2f} s")

    import torch

    torch.set_num_threads(1)
    from dsmnas.envs import EnvConfig
    from dsmnas.trainables.search import run_search

    for seed in range(args.seeds):
        r = run_search(EnvConfig(table=args.table, seed=seed), progress=None)
        per_iter_ms = 1000 * r.wall_time_s / max(r.queries, 1)
        print(f"seed {seed}: build {r.startup_s:.2f} s, search {r.wall_time_s:.2f} s "
              f"for {r.queries} queries ({per_iter_ms:.1f} ms/iteration), "
              f"total with Ray start-up {ray_s + r.startup_s + r.wall_time_s:.1f} s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (driver process, RSS): {peak_mb:.0f} MB")
    _where_the_time_goes(args.table)


def _where_the_time_goes(table: str) -> None:
    """Per-iteration split, by timing the two calls that `training_step` makes."""
    from dsmnas.envs import DSMNASEnv, EnvConfig
    from dsmnas.trainables.reinforce import reinforce_config
    from dsmnas.trainables.search import local_env

    algo = reinforce_config(DSMNASEnv, env_config=EnvConfig(table=table, seed=0).to_dict(),
                            seed=0).build_algo()
    env = local_env(algo)
    spent = {"sample": [], "update": []}

    def timed(obj, name, key):
        fn = getattr(obj, name)

        def wrapper(*a, **kw):
            t = time.perf_counter()
            out = fn(*a, **kw)
            spent[key].append(1000 * (time.perf_counter() - t))
            return out

        setattr(obj, name, wrapper)

    timed(algo.env_runner_group.local_env_runner, "sample", "sample")
    timed(algo.learner_group, "update", "update")
    totals = []
    while env.episodes_finished == 0:
        t = time.perf_counter()
        algo.train()
        totals.append(1000 * (time.perf_counter() - t))
    algo.stop()
    med = statistics.median
    total, sample, learn = med(totals), med(spent["sample"]), med(spent["update"])
    print(f"per iteration (median of {len(totals)}): total {total:.1f} ms = sampling "
          f"{sample:.1f} ms (env step + policy forward) + learner update {learn:.1f} ms "
          f"(replay forward, loss, backward, Adam) + RLlib bookkeeping "
          f"{total - sample - learn:.1f} ms")


if __name__ == "__main__":
    main()
