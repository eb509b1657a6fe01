"""Speed of DSM-NAS searches: the whole command, the loop against a bare PyTorch loop, and
many searches at once (README, "Speed").

How to run (from the repository root; an otherwise idle machine):
    .venv/bin/python benchmarks/bench_speed.py [--table PATH] [--reps 3] [--part all]

Parts (`--part command|loop|population|all`):
- `command`: `dsmnas search --quiet` (embedded data, default budget, seed 0) as a newcomer
  runs it, `--reps` times: the process's wall time against the search's own wall time
  (`wall_time_s` of result.json); the difference is start-up (imports, data, build) and exit.
- `loop`: on one thread, interleaved `--reps` times, per search (the table at 25,000 s, or the
  embedded data at 400,000 s without it) and per iteration: `run_search` (RLlib: EnvRunner,
  Learner, REINFORCE) against `bare_search` below, a plain PyTorch loop with the same
  controller (`policies.dsm_module.DSMController`), env, REINFORCE loss, baseline rule and
  Adam. The bare loop samples with autograd on and back-propagates through that pass; it is a
  yardstick, not a method (no checkpoints, no RLlib).
- `population`: `dsmnas compare --methods dsm --seeds N` (Table II's protocol with the table)
  run as lone searches (`--population 1`: one Tune trial per search, one per core) and in
  population mode (`--population 50`: two trials of 50 for 100 seeds); the whole command's
  wall time of each, then per metric both means ± stds, Welch's t-test (same mean) and
  Levene's test (same spread) between them. The folders stay in `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_TABLE = ROOT.parent / "shared/data/nb201/nb201.csv.gz"


def bare_search(env_config, learner) -> tuple[int, float]:
    """One DSM-NAS search as a plain PyTorch loop; returns (queries, wall seconds)."""
    import torch

    from dsmnas.envs import DSMNASEnv
    from dsmnas.policies.dsm_module import DSMController, DSMModuleConfig

    env = DSMNASEnv(**env_config.to_dict())
    obs, _ = env.reset(seed=env_config.seed)
    torch.manual_seed(env_config.seed)
    K, M = env_config.K, env_config.M
    L, C = env.observation_space["op_mask"].shape
    pi = DSMController(K, L, C, M, DSMModuleConfig(use_graph=learner.use_graph))
    opt = torch.optim.Adam(pi.parameters(), lr=learner.lr, weight_decay=learner.weight_decay)
    sizes = [K] + [L, C] * M
    baseline = None
    start = time.perf_counter()
    while True:
        batch = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
        actions, logp, logits, _ = pi(batch)
        obs, reward, terminated, truncated, _ = env.step(actions[0].numpy())
        baseline = reward if baseline is None else (
            learner.baseline_decay * baseline + (1 - learner.baseline_decay) * reward)
        entropy = sum(torch.distributions.Categorical(logits=part).entropy()
                      for part in logits.split(sizes, dim=-1))
        loss = -(reward - baseline) * logp.mean() - learner.entropy * entropy.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if terminated or truncated:
            break
    return env.benchmark.clock.state()["queries"], time.perf_counter() - start


def part_command(reps: int) -> None:
    print("== whole command: `dsmnas search --quiet` (embedded data, default budget, seed 0)")
    rows = []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "dsmnas.experiments.cli", "search", "--quiet",
                            "--out", out], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            whole = time.perf_counter() - t0
            inside = json.loads((Path(out) / "result.json").read_text())["wall_time_s"]
        rows.append((whole, inside))
        print(f"  whole {whole:5.2f} s   in-search {inside:5.2f} s   outside {whole - inside:5.2f} s")
    for t0, cmd in ((time.perf_counter(), ["--help"]),):
        subprocess.run([sys.executable, "-m", "dsmnas.experiments.cli", *cmd], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        print(f"  `dsmnas --help` {time.perf_counter() - t0:.2f} s")
    med = lambda i: statistics.median(r[i] for r in rows)  # noqa: E731
    print(f"  median: whole {med(0):.2f} s, in-search {med(1):.2f} s, outside "
          f"{med(0) - med(1):.2f} s")


def part_loop(table: str | None, reps: int) -> None:
    import torch

    torch.set_num_threads(1)
    from dsmnas.envs import EnvConfig
    from dsmnas.trainables.learner import LearnerSettings
    from dsmnas.trainables.search import run_search

    learner = LearnerSettings()
    print(f"== the loop, one thread: run_search (RLlib) vs bare PyTorch loop; data "
          f"{table or 'embedded'}")
    rllib, bare = [], []
    for rep in range(reps):
        cfg = EnvConfig(table=table, seed=rep)
        r = run_search(cfg, learner, progress=None)
        q, s = bare_search(cfg, learner)
        rllib.append((r.queries, r.wall_time_s))
        bare.append((q, s))
        print(f"  seed {rep}: run_search {r.wall_time_s:.2f} s ({r.queries} queries, "
              f"{1e3 * r.wall_time_s / r.queries:.1f} ms/query)   bare {s:.2f} s ({q} queries, "
              f"{1e3 * s / q:.1f} ms/query)")
    ms = lambda rows: 1e3 * sum(s for _, s in rows) / sum(q for q, _ in rows)  # noqa: E731
    per = lambda rows: statistics.median(s for _, s in rows)  # noqa: E731
    print(f"  per search (median): run_search {per(rllib):.2f} s, bare {per(bare):.2f} s, "
          f"ratio {per(rllib) / per(bare):.2f}")
    print(f"  per query: run_search {ms(rllib):.1f} ms, bare {ms(bare):.1f} ms, ratio "
          f"{ms(rllib) / ms(bare):.2f}")


def part_population(table: str | None, seeds: int, out_root: Path) -> None:
    """Table II's DSM-NAS rows both ways, whole commands timed; then whether they agree."""
    import pandas as pd
    from scipy import stats

    from dsmnas.experiments.report import welch_p

    print(f"== {seeds} DSM-NAS seeds of Table II ({table or 'embedded data'}), two cores")
    runs = {}
    for label, size in (("one search per trial", 1), ("population mode", 50)):
        out = out_root / f"population-{size}"
        cmd = [sys.executable, "-m", "dsmnas.experiments.cli", "compare", "--methods", "dsm",
               "--seeds", str(seeds), "--population", str(size), "--out", str(out)]
        if table:
            cmd += ["--table", table, "--budget", "25000"]
        if out.exists():
            cmd += ["--resume"]  # a finished folder from an earlier run would be refused
            print(f"  ({out} exists: its runs are reused, the time below is not a full run)")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        runs[label] = frame = pd.read_csv(out / "runs.csv")
        print(f"  {label:21s} --population {size:<3d} whole command {wall:6.1f} s, "
              f"{len(frame)} runs, {frame.status.eq('ok').sum()} ok; {out}")
    lone, pop = runs.values()
    print("  metric              one per trial     population        Welch p  Levene p")
    for col in ["val_acc", *[c for c in lone.columns if c.startswith("test_acc_")], "queries"]:
        a, b = lone[col].astype(float), pop[col].astype(float)
        print(f"  {col:18s} {a.mean():8.3f} ± {a.std():5.3f}  {b.mean():8.3f} ± {b.std():5.3f}"
              f"  {welch_p(a, b):7.3f}  {stats.levene(a, b).pvalue:7.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(DEFAULT_TABLE) if DEFAULT_TABLE.exists() else None)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seeds", type=int, default=100, help="seeds of the population part")
    p.add_argument("--part", default="all", choices=("command", "loop", "population", "all"))
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-speed"),
                   help="where the population part's comparison folders are kept")
    args = p.parse_args()
    os.chdir(ROOT)
    if args.part in ("command", "all"):
        part_command(args.reps)
    if args.part in ("loop", "all"):
        part_loop(args.table, args.reps)
    if args.part in ("population", "all"):
        part_population(args.table, args.seeds, Path(args.out))


if __name__ == "__main__":
    main()
