"""A long Tune trial killed mid-search: wall time to its result, against an uninterrupted one.

How to run:  python benchmarks/bench_trial_restore.py [--space mobilenet|nb201] [--at 0.6]
             [--predictor ../shared/models/ofa/acc_predictor.pth] [--out runs/trial-restore]

Runs `dsmnas compare --methods dsm --seeds 1 --population 1` (seed 0; MobileNet-like space
with OFA's predictor, 10,000 queries, by default) twice through `run_compare`: once
uninterrupted, once with the trial's worker killed (SIGKILL, as a lost node) at the first
progress report past `--at` of the budget that follows a checkpoint. Tune retries the trial,
which continues from its last checkpoint (`trainables.live`). Prints both wall times (the
whole comparison, Ray's start-up included) and whether the two histories are byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="mobilenet", choices=("mobilenet", "nb201"))
    p.add_argument("--at", type=float, default=0.6)
    p.add_argument("--predictor", default=str(SHARED / "models/ofa/acc_predictor.pth"))
    p.add_argument("--table", default=str(SHARED / "data/nb201/nb201.csv.gz"))
    p.add_argument("--out", default="runs/trial-restore")
    args = p.parse_args()

    from dsmnas.experiments import recorder
    from dsmnas.experiments.compare import run_compare
    from dsmnas.experiments.plan import plan_compare
    from dsmnas.trainables.ray_utils import ensure_ray

    env = ({"space": "mobilenet", "predictor": args.predictor} if args.space == "mobilenet"
           else {"table": args.table, "budget_s": 790_000.0})
    plan = plan_compare("dsm", 1, env=env, population=1)
    ensure_ray(num_cpus=2)
    out = Path(args.out)
    timing = {}
    start = time.perf_counter()
    run_compare(plan, out / "calm", printer=lambda line: None)
    timing["uninterrupted_s"] = time.perf_counter() - start

    killed = {}

    class Killer(recorder.RunsRecorder):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if (not killed and result.get("report") == "progress" and trial.checkpoint
                    and result["budget_fraction"] >= args.at):
                killed.update(fraction=result["budget_fraction"],
                              at_s=time.perf_counter() - start)
                os.kill(int(result["pid"]), signal.SIGKILL)
            super().on_trial_result(iteration, trials, trial, result, **info)

    recorder.RunsRecorder = Killer
    start = time.perf_counter()
    runs = run_compare(plan, out / "killed", printer=lambda line: None)
    timing["killed_and_resumed_s"] = time.perf_counter() - start
    name = "dsm-0.csv"
    same = ((out / "killed" / "histories" / name).read_bytes()
            == (out / "calm" / "histories" / name).read_bytes())
    print(json.dumps({"space": args.space, **{k: round(v, 1) for k, v in timing.items()},
                      "killed_at_fraction": round(killed.get("fraction", float("nan")), 3),
                      "killed_after_s": round(killed.get("at_s", float("nan")), 1),
                      "status": runs["status"].tolist(), "history_identical": same}))


if __name__ == "__main__":
    main()
