"""Environment step rate: random actions through DSMNAS-v0 on one core.

How to run:  python benchmarks/bench_env.py [--table ../shared/data/nb201/nb201.csv.gz]
Prints steps per second (resets included, actions pre-drawn so only the env is timed) for
the table back end and the embedded one. Target: >= 10,000 steps/s.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from dsmnas.envs import DSMNASEnv

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared/data/nb201/nb201.csv.gz"


def steps_per_second(env: DSMNASEnv, seconds: float, seed: int = 0) -> tuple[float, int]:
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, env.action_space.nvec, size=(100_000, len(env.action_space.nvec)))
    steps = episodes = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions[:1000]:
            if env.step(a)[2]:
                episodes += 1
                env.reset()
        steps += 1000
        actions = np.roll(actions, 1000, axis=0)
    return steps / (time.perf_counter() - start), episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    for label, table in (("table", args.table), ("embedded", None)):
        env = DSMNASEnv(table=table, K=4, M=4)
        rate, episodes = steps_per_second(env, args.seconds)
        print(f"{label:9s} K=4 M=4: {rate:,.0f} steps/s ({episodes} episodes)")


if __name__ == "__main__":
    main()
