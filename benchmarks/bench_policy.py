"""Speed of the DSM-NAS controller (policies.DSMNASModule) on one CPU thread.

This script shows what one policy update costs in the module itself, per iteration:
an exploration pass that samples the 1 + 2M decisions (no grad), the training pass that
replays them (teacher forcing), `dist.logp` + `dist.entropy` and the backward pass.
K=4, M=4, L=6, C=5 (NAS-Bench-201, paper settings), hidden size 64, batch 1 and 32.

How to run:
    python benchmarks/bench_policy.py [--iters 300] [--warmup 30]

Results to expect (measured on a 2-core CPU VM, torch 2.13 CPU, 1 thread, 300 iterations):

    variant    batch  sample ms  train fwd+bwd ms  total ms
    gnn            1       2.86              5.63      8.49
    gnn           32       4.23              9.13     13.36
    no-graph       1       2.16              4.71      6.87
    no-graph      32       2.80              6.30      9.10

At batch 1 the time is per-op overhead of the 1 + 2M = 9 sequential decisions, not
arithmetic: batch 32 costs only about 1.6x batch 1.
"""

from __future__ import annotations

import argparse
import time

import torch

from dsmnas.envs import dsm_spaces
from dsmnas.policies import DSMNASModule
from ray.rllib.core.columns import Columns

K, M, L, C = 4, 4, 6, 5


def make_module(use_graph: bool) -> DSMNASModule:
    obs_space, action_space = dsm_spaces(K, L, C, M)
    return DSMNASModule(
        observation_space=obs_space,
        action_space=action_space,
        model_config={"use_graph": use_graph},
    )


def make_obs(batch: int) -> dict:
    val_acc = torch.rand(batch, K)
    order = torch.arange(K)
    adj = (val_acc.unsqueeze(2) < val_acc.unsqueeze(1)).float()  # weaker -> better
    adj = adj + ((val_acc.unsqueeze(2) == val_acc.unsqueeze(1)) & (order[:, None] < order)).float()
    return {
        "tokens": torch.randint(0, C, (batch, K, L)),
        "val_acc": val_acc,
        "adj": adj,
        "op_mask": torch.ones(batch, L, C),
    }


def time_ms(module: DSMNASModule, batch: int, iters: int, warmup: int) -> tuple[float, float]:
    """Return (sample ms, train forward+backward ms) per iteration."""
    obs = make_obs(batch)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    dist_cls = module.get_train_action_dist_cls()
    sample_s = train_s = 0.0
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        actions = module.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS]
        t1 = time.perf_counter()
        out = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: actions})
        dist = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])
        loss = -(dist.logp(actions).mean() + 1e-3 * dist.entropy().mean())
        optimizer.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        if i >= warmup:
            sample_s += t1 - t0
            train_s += t2 - t1
    return 1e3 * sample_s / iters, 1e3 * train_s / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300, help="timed iterations per case")
    parser.add_argument("--warmup", type=int, default=30, help="untimed iterations first")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"K={K} M={M} L={L} C={C}, 1 thread, torch {torch.__version__}, {args.iters} iters")
    print(f"{'variant':<10}{'batch':>6}{'sample ms':>11}{'train fwd+bwd ms':>18}{'total ms':>10}")
    for use_graph in (True, False):
        for batch in (1, 32):
            sample_ms, train_ms = time_ms(make_module(use_graph), batch, args.iters, args.warmup)
            name = "gnn" if use_graph else "no-graph"
            print(
                f"{name:<10}{batch:>6}{sample_ms:>11.2f}{train_ms:>18.2f}"
                f"{sample_ms + train_ms:>10.2f}"
            )


if __name__ == "__main__":
    main()
