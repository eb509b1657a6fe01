"""Where one REINFORCE `train()` call spends its time (batch size 1, in-process runner).

This script shows: the wall time of `algo.train()` with the small test RLModule and toy
env of tests/test_reinforce.py, split into sampling, learner update, weight sync, and the
rest (RLlib's metrics reduction and result compilation), for the default
(`share_module_in_process=True`: the EnvRunner samples with the Learner's module) and for
RLlib's usual weight sync, interleaved so that both see the same machine load; and the
pure-torch forward + loss + backward + Adam step for comparison.

How to run (from the repository root):
    .venv/bin/python benchmarks/reinforce_overhead.py [--iters 200]

Results to expect (2-core CPU VM, ray 2.60, torch 2.13 CPU, otherwise idle): about 8 ms
per `train()` with the shared module (sampling ~2.2, update ~3.5, outside
training_step ~1.8) and ~2.5 ms more with weight sync; the torch step itself is ~1 ms.
200 iterations take ~1.7 s after Ray is up.
"""

import argparse
import os
import statistics
import sys
import time

# The repository root, for the test module and toy env of tests/test_reinforce.py.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402

from tests.test_reinforce import NVEC, OBS_DIM, ToyEditEnv, ToyMLPModule  # noqa: E402
from dsmnas.trainables.reinforce import reinforce_config  # noqa: E402


def _timed(obj, name, sink):
    """Replaces the bound method `obj.name` by a wrapper that appends its wall time."""
    inner = getattr(obj, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - t0)

    setattr(obj, name, wrapper)


def _torch_update_ms(module, optimizer, reps=200):
    """Forward (train pass) + REINFORCE loss + backward + Adam step at batch size 1."""
    obs = torch.full((1, OBS_DIM), 0.5)
    actions = torch.zeros((1, len(NVEC)), dtype=torch.int64)
    dist_cls = module.get_train_action_dist_cls()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        logits = module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        dist = dist_cls.from_logits(logits)
        loss = -(0.1 * dist.logp(actions)).mean() - 1e-3 * dist.entropy().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _instrument(algo):
    parts = {k: [] for k in ("train", "sample", "update", "sync", "training_step")}
    _timed(algo, "_sample", parts["sample"])
    _timed(algo.learner_group, "update", parts["update"])
    _timed(algo.env_runner_group, "sync_weights", parts["sync"])
    _timed(algo, "training_step", parts["training_step"])
    _timed(algo, "train", parts["train"])
    return parts


def _report(name, parts):
    med = lambda key: 1e3 * statistics.median(parts[key]) if parts[key] else 0.0  # noqa
    total, step = med("train"), med("training_step")
    rest = step - med("sample") - med("update") - med("sync")
    print(f"{name}: median {total:.2f} ms, mean {1e3 * np.mean(parts['train']):.2f} ms "
          f"per train() over {len(parts['train'])} calls")
    print(f"  sampling (1 env step)        {med('sample'):6.2f} ms")
    print(f"  learner update               {med('update'):6.2f} ms")
    print(f"  weight sync                  {med('sync'):6.2f} ms")
    print(f"  rest of training_step        {rest:6.2f} ms (metrics aggregation, timers)")
    print(f"  outside training_step        {total - step:6.2f} ms "
          f"(metrics reduce/compile, result dict)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200, help="timed train() calls each")
    parser.add_argument("--warmup", type=int, default=20, help="untimed train() calls each")
    args = parser.parse_args()

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    print(f"ray.init {time.perf_counter() - t0:.2f} s")
    algos = {}
    for name, share in (("shared module", True), ("weight sync", False)):
        config = reinforce_config(
            ToyEditEnv, {}, {"hidden": 32}, seed=0, module_class=ToyMLPModule
        ).training(share_module_in_process=share)
        t0 = time.perf_counter()
        algos[name] = config.build_algo()
        print(f"build_algo ({name}) {time.perf_counter() - t0:.2f} s")
        for _ in range(args.warmup):
            algos[name].train()
    parts = {name: _instrument(algo) for name, algo in algos.items()}
    # Interleave the two variants in blocks, so that load from other processes hits both.
    t_total = dict.fromkeys(algos, 0.0)
    for _ in range(0, args.iters, 20):
        for name, algo in algos.items():
            t0 = time.perf_counter()
            for _ in range(20):
                algo.train()
            t_total[name] += time.perf_counter() - t0
    learner = algos["shared module"].learner_group._learner
    module = learner.module["default_policy"]
    torch_ms = _torch_update_ms(module, torch.optim.Adam(module.parameters(), lr=1e-3))
    for algo in algos.values():
        algo.stop()
    ray.shutdown()

    for name in algos:
        _report(name, parts[name])
        print(f"  => {len(parts[name]['train'])} iterations in {t_total[name]:.2f} s")
    print(f"pure torch forward + loss + backward + Adam step (batch 1): {torch_ms:.2f} ms")


if __name__ == "__main__":
    main()
