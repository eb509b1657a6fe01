"""One supernet-scored search over N workers: wall time with 1, 2 and 4 evaluator actors (README,
"Parallel workers").

How to run (from the repository root):
    .venv/bin/python benchmarks/bench_workers_supernet.py [--device cpu|cuda] [--actors 1 2 4]
        [--workers 4] [--queries 48] [--checkpoint supernet.pt] [--out bench.json]

`dsm-sync` with `--workers N` samples N proposals per step and `DSMNASEnv.step_batch` sends
them to the evaluator service in one call, which spreads them over the actors at once; so one
search's wall time should fall with the number of actors, up to min(N, actors, what the
hardware runs in parallel: on CPU, the machine's cores). Each row: one `dsm-sync` search (seed 0, `--queries` charged
queries) against a service of A actors, its wall time in the search, and the speed-up against
A = 1 next to the ideal min(A, N, CPU cores) on CPU, min(A, N) on GPU. `dsm` (one query at a time) with the largest service is
the reference: extra actors cannot help it. Without --checkpoint a randomly initialised w1.0
supernet at 32x32 (Fashion-MNIST) is written to a temporary folder: the time per subnet does
not depend on the weights. CPU actors take one core and one torch thread each; `--device
cuda` puts each actor on a 1/A share of the GPUs (fractional GPUs). Ray is started with at least
A + 1 logical CPUs, so that A actors start on a machine with fewer cores (they then share
them: the ideal says so). Each service is warmed up (one subnet per actor, not part of the
search) before its search is timed. Rows are printed as each search ends.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def one_search(method: str, checkpoint: str, service: str, workers: int, queries: int,
               kwargs: dict) -> dict:
    from dsmnas.envs import EnvConfig
    from dsmnas.trainables.methods import run_method

    cfg = EnvConfig(space="mobilenet", evaluator="supernet", checkpoint=checkpoint,
                    evaluator_service=service, budget_queries=queries, seed=0,
                    workers=workers, **kwargs)
    t0 = time.perf_counter()
    result = run_method(method, cfg, {})
    return {"method": method, "workers": workers, "queries": result.queries,
            "search_s": result.wall_time_s, "total_s": time.perf_counter() - t0,
            "val_acc": result.val_acc}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--queries", type=int, default=48)
    p.add_argument("--checkpoint", help="a supernet checkpoint (default: a random one, 32x32)")
    p.add_argument("--calib-images", type=int, default=200)
    p.add_argument("--val-images", type=int, default=500)
    p.add_argument("--out", help="also write the rows as JSON here")
    args = p.parse_args()

    from bench_evaluators import make_checkpoint

    from dsmnas.envs.evaluators.client import EvaluatorClient
    from dsmnas.trainables.evaluator_service import start_evaluators
    from dsmnas.trainables.fit_predictor import sample_archs
    from dsmnas.trainables.ray_utils import ensure_ray

    kwargs = {"calib_images": args.calib_images, "val_images": args.val_images}
    cores = os.cpu_count() or 1
    rows = []

    def ideal(row):
        parallel = min(row["actors"], row["workers"])
        return parallel if args.device == "cuda" else min(parallel, cores)

    def show(row):
        rows.append(row)
        base = rows[0]["search_s"]
        print(f"| {row['method']} | {row['workers']} | {row['actors']} | {row['queries']} | "
              f"{row['search_s']:.1f} | {row['search_s'] / row['queries']:.2f} | "
              f"{base / row['search_s']:.2f}x | {ideal(row)}x |", flush=True)

    print(f"device: {args.device} ({cores} CPU cores); supernet: "
          f"{args.checkpoint or 'random w1.0, 32x32'}; {args.calib_images} calibration + "
          f"{args.val_images} validation images per subnet; {args.queries} queries\n")
    print("| method | workers | actors | queries | search wall s | s per query | speed-up | ideal |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or make_checkpoint(tmp)
        ensure_ray(num_cpus=max(cores, max(args.actors) + 1))
        for n in args.actors:
            name = f"bench-workers-{n}"
            gpus = None if args.device == "cuda" else 0
            with start_evaluators(checkpoint, n_actors=n, gpus_per_actor=gpus, cpus_per_actor=1,
                                  name=name, evaluator_kwargs=kwargs,
                                  require_gpu=args.device == "cuda"):
                # warm-up: every actor scores one subnet (first-call costs) before the timing
                EvaluatorClient.connect(name).evaluate(sample_archs(n, seed=99))
                show({**one_search("dsm-sync", checkpoint, name, args.workers, args.queries,
                                   {}), "actors": n})
                if n == max(args.actors):
                    show({**one_search("dsm", checkpoint, name, 1, args.queries, {}),
                          "actors": n})
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
