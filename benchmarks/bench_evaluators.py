"""Evaluator throughput in architectures per second: OFA's pretrained accuracy predictor, the
supernet's SubnetEvaluator in-process, and the same through the Ray actor service.

How to run:  python benchmarks/bench_evaluators.py [--device auto|cpu|cuda]
                 [--checkpoint supernet.pt] [--predictor acc_predictor.pth] [--out bench.json]
Without --checkpoint a randomly initialised w1.0 supernet checkpoint at 32x32 (Fashion-MNIST)
is written to a temporary folder: throughput does not depend on the weights. Every subnet
scored is distinct (no cache hits) except in the `service, cached` row. Prints a markdown
table; --out also writes it as JSON.

Results measured (2 CPU cores shared with two other busy processes, 1 torch thread, 32x32,
200 calibration + 500 validation images): predictor 8,100 archs/s one at a time, 22,600 in
batches of 100 or 1,000; SubnetEvaluator 1.9 archs/s (0.53 s per subnet) in-process, the same
through 1 actor, and no gain from 2 actors on the busy cores; actor-cache hits ~3,500 archs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

DEFAULT_PREDICTOR = Path(__file__).resolve().parents[2] / "shared/models/ofa/acc_predictor.pth"


def rate(fn, n_archs: int, min_s: float) -> tuple[float, int]:
    """archs/s of `fn()` (which scores `n_archs`), repeated for at least `min_s` seconds."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return calls * n_archs / elapsed, calls


def bench_predictor(path: str, device: str, min_s: float) -> list[dict]:
    import torch
    from ofa.tutorial.accuracy_predictor import AccuracyPredictor

    from dsmnas.trainables.fit_predictor import sample_archs

    predictor = AccuracyPredictor(pretrained=False, device=device)
    predictor.model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    predictor.model.eval()
    archs = [{**a, "r": [224]} for a in sample_archs(1000, seed=0)]
    rows = []
    for batch in (1, 100, 1000):
        predictor.predict_accuracy(archs[:batch])  # warm-up
        per_s, calls = rate(lambda: predictor.predict_accuracy(archs[:batch]), batch, min_s)
        rows.append({"evaluator": "ofa predictor", "batch": batch, "archs_per_s": per_s,
                     "calls": calls})
    return rows


def make_checkpoint(folder: str) -> str:
    import torch

    from dsmnas.envs.evaluators.supernet import build_supernet, save_checkpoint

    torch.manual_seed(0)
    meta = dict(width_mult=1.0, n_classes=10, dropout=0.0, resolution=32,
                dataset="fashion-mnist", data="fashion-mnist", steps=0, seed=0)
    return save_checkpoint(os.path.join(folder, "supernet.pt"), build_supernet(1.0, 10), meta)


def bench_direct(checkpoint: str, device: str, kwargs: dict, n_archs: int) -> dict:
    from dsmnas.envs.evaluators.supernet import SubnetEvaluator
    from dsmnas.trainables.fit_predictor import sample_archs

    evaluator = SubnetEvaluator(checkpoint, device=device, **kwargs)
    evaluator.evaluate(sample_archs(1, seed=99))  # warm-up (cuDNN autotuning, allocator)
    archs = sample_archs(n_archs, seed=1)
    start = time.perf_counter()
    evaluator.evaluate(archs)
    return {"evaluator": "SubnetEvaluator", "batch": n_archs,
            "archs_per_s": n_archs / (time.perf_counter() - start), "calls": 1}


def bench_service(checkpoint: str, device: str, kwargs: dict, n_archs: int,
                  n_actors: int) -> list[dict]:
    from dsmnas.envs.evaluators.client import EvaluatorClient
    from dsmnas.trainables.evaluator_service import start_evaluators
    from dsmnas.trainables.fit_predictor import sample_archs

    gpus = 0 if device == "cpu" else None  # None: share the cluster's GPUs evenly
    cpus = 1  # one torch thread per CPU actor, as in-process with --threads 1
    start = time.perf_counter()
    with start_evaluators(checkpoint, n_actors=n_actors, gpus_per_actor=gpus,
                          cpus_per_actor=cpus, name=f"bench-{n_actors}",
                          evaluator_kwargs=kwargs, require_gpu=device == "cuda") as svc:
        start_s = time.perf_counter() - start
        client = svc.client()
        client.evaluate(sample_archs(n_actors, seed=99))  # warm-up every actor
        archs = sample_archs(n_archs, seed=2)
        t0 = time.perf_counter()
        client.evaluate(archs)
        fresh_rate = n_archs / (time.perf_counter() - t0)
        again = EvaluatorClient(svc.names, svc.namespace)  # no local cache: actor caches
        t0 = time.perf_counter()
        again.evaluate(archs)
        cached_rate = n_archs / (time.perf_counter() - t0)
    label = f"service, {n_actors} actor{'s' if n_actors > 1 else ''} ({svc.device})"
    return [
        {"evaluator": label, "batch": n_archs, "archs_per_s": fresh_rate, "calls": 1,
         "start_s": start_s},
        {"evaluator": f"{label}, cached", "batch": n_archs, "archs_per_s": cached_rate,
         "calls": 1},
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--predictor", default=str(DEFAULT_PREDICTOR))
    p.add_argument("--checkpoint", help="a supernet checkpoint (default: a random one, 32x32)")
    p.add_argument("--n-archs", type=int, default=16, help="subnets per supernet measurement")
    p.add_argument("--calib-images", type=int, default=200)
    p.add_argument("--val-images", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    p.add_argument("--min-s", type=float, default=1.0, help="seconds per predictor measurement")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads in-process (2 threads on 2 busy cores ran 10x slower)")
    p.add_argument("--out", help="also write the rows as JSON here")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kwargs = dict(calib_images=args.calib_images, val_images=args.val_images,
                  batch_size=args.batch_size)
    rows = bench_predictor(args.predictor, device, args.min_s)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or make_checkpoint(tmp)
        rows.append(bench_direct(checkpoint, device, kwargs, args.n_archs))
        from dsmnas.trainables.ray_utils import ensure_ray

        ensure_ray()
        for n in args.actors:
            rows.extend(bench_service(checkpoint, device, kwargs, args.n_archs, n))

    name = torch.cuda.get_device_name() if device == "cuda" else f"{os.cpu_count()} CPU cores"
    print(f"device: {device} ({name}); supernet: {args.checkpoint or 'random w1.0, 32x32'}; "
          f"{args.calib_images} calibration + {args.val_images} validation images per subnet\n")
    print("| evaluator | archs per call | archs/s | ms/arch |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['evaluator']} | {r['batch']} | {r['archs_per_s']:,.1f} | "
              f"{1000 / r['archs_per_s']:.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": device, "device_name": name, "settings": vars(args),
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
