"""The training loop of `dsmnas train-supernet`: an OFA MobileNetV3 supernet, sandwich rule.

What it does, writes and takes (`SupernetTrainSettings`, the subcommand's parser) is told
in `trainables.supernet_settings`, whose docstring is the subcommand's description.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time

import torch
import torch.nn.functional as F

from dsmnas.envs.evaluators.supernet import (
    SubnetEvaluator,
    build_supernet,
    largest_arch,
    read_checkpoint,
    save_checkpoint,
    smallest_arch,
)
from dsmnas.envs.evaluators.images import FASHION_MNIST, data_name, load_images, resolve_data
from dsmnas.envs.errors import ConfigError
from dsmnas.trainables.supernet_settings import SupernetTrainSettings

CHECKPOINT_FILE = "supernet.pt"
RESULTS_FILE = "train.json"



_RUN_ONLY = ("minutes", "checkpoint_every", "progress_every", "device")
"""Settings that may change between a run and its resumption."""


def train_supernet(
    data: str | None = FASHION_MNIST,
    out: str = "runs/supernet",
    progress=print,
    resume: bool = False,
    **settings,
) -> str:
    """Train a supernet on `data` into `out` (see the module docstring); the checkpoint's path.

    `settings` are `SupernetTrainSettings` fields (resolution=32, width_mult=1.2, steps=900,
    batch_size=128, lr=0.1, seed=0, n_random=1, smallest=False, checkpoint_every=100,
    minutes=None, ...). `progress` gets one line at a time (None: silent).
    """
    names = {f.name for f in dataclasses.fields(SupernetTrainSettings)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise ConfigError(f"unknown supernet training settings {unknown}; allowed: {sorted(names)}")
    cfg = SupernetTrainSettings(data=resolve_data(data), **settings)
    say = progress or (lambda line: None)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device")
    path = os.path.join(out, CHECKPOINT_FILE)
    start_step, time_before_s, ckpt = 0, 0.0, None
    if resume:
        ckpt = read_checkpoint(path)
        saved = ckpt["meta"].get("train", {})
        differ = {k: (saved.get(k), v) for k, v in dataclasses.asdict(cfg).items()
                  if k not in _RUN_ONLY and saved.get(k) != v}
        if differ:
            raise ConfigError(f"cannot resume {path} with other settings (saved, given): {differ}")
        start_step = int(ckpt["meta"]["steps"])
        time_before_s = float(ckpt["meta"]["train_time_s"])
    elif os.path.exists(path):
        raise ConfigError(f"{path} exists: resume it (--resume) or choose another --out")

    train = load_images(cfg.data, cfg.resolution, "train")
    if len(train) < cfg.batch_size:
        raise ConfigError(f"batch_size {cfg.batch_size} exceeds the {len(train)} training images")
    torch.manual_seed(cfg.seed)
    net = build_supernet(cfg.width_mult, len(train.classes), cfg.dropout)
    if ckpt is not None:
        net.load_state_dict(ckpt["state_dict"])
    net = net.to(cfg.device, memory_format=torch.channels_last)
    optimizer = _optimizer(net, cfg)
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    meta = {
        "width_mult": cfg.width_mult, "n_classes": len(train.classes), "dropout": cfg.dropout,
        "resolution": cfg.resolution, "dataset": data_name(cfg.data), "data": cfg.data,
        "classes": list(train.classes), "seed": cfg.seed, "train": dataclasses.asdict(cfg),
        "ks_list": [3, 5, 7], "expand_ratio_list": [3, 4, 6], "depth_list": [2, 3, 4],
    }

    def checkpoint(step: int, elapsed_s: float) -> None:
        save_checkpoint(path, net, {**meta, "steps": step, "train_time_s": elapsed_s,
                                    "finished": step >= cfg.steps},
                        optimizer=optimizer.state_dict())

    say(f"training a w{cfg.width_mult} supernet on {meta['dataset']} ({len(train)} images, "
        f"{cfg.resolution}x{cfg.resolution}) for steps {start_step}..{cfg.steps}, batch "
        f"{cfg.batch_size}, {1 + cfg.smallest + cfg.n_random} subnets per step -> {path}")
    labels = train.labels.to(cfg.device)
    per_epoch = len(train) // cfg.batch_size
    order, order_epoch = None, -1
    t0 = time.perf_counter()
    window_t, window_steps, losses = t0, 0, []
    step = start_step
    net.train()
    while step < cfg.steps:
        if cfg.minutes is not None and time.perf_counter() - t0 > 60.0 * cfg.minutes:
            say(f"step {step}: the {cfg.minutes} minute limit is reached; stopping")
            break
        epoch, k = divmod(step, per_epoch)
        if epoch != order_epoch:
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            order, order_epoch = torch.randperm(len(train), generator=g), epoch
        index = order[k * cfg.batch_size:(k + 1) * cfg.batch_size]
        x = train.batch(index, device=cfg.device)
        y = labels[index]
        losses.append(_sandwich_step(net, optimizer, cfg, step, x, y))
        step += 1
        window_steps += 1
        if step % cfg.progress_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            ips = window_steps * cfg.batch_size / max(now - window_t, 1e-9)
            eta_s = (cfg.steps - step) * cfg.batch_size / max(ips, 1e-9)
            say(f"step {step}/{cfg.steps} loss {sum(losses) / len(losses):.3f} "
                f"lr {cfg.lr_at(step - 1):.4f} {ips:.0f} images/s ETA {eta_s / 60:.1f} min")
            window_t, window_steps, losses = now, 0, []
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            checkpoint(step, time_before_s + time.perf_counter() - t0)
    train_time_s = time_before_s + time.perf_counter() - t0
    checkpoint(step, train_time_s)
    steps_run = step - start_step
    images_per_s = steps_run * cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
    say(f"checkpoint {path} at step {step}; evaluating the largest and smallest subnets")
    del net, optimizer, train
    evaluator = SubnetEvaluator(path, device=cfg.device)
    largest, smallest = evaluator.evaluate([largest_arch(), smallest_arch()])
    results = {
        "settings": dataclasses.asdict(cfg), "steps": step, "finished": step >= cfg.steps,
        "train_time_s": round(train_time_s, 2), "images_per_s_last_session": round(images_per_s, 1),
        "subnets_per_step": 1 + cfg.smallest + cfg.n_random,
        "val_acc": {"largest": largest, "smallest": smallest},
        "eval": {"calib_images": evaluator.n_calib, "val_images": evaluator.n_val,
                 "seconds_per_subnet": round(evaluator.eval_time_s / 2, 3)},
        "checkpoint": path, "checkpoint_mb": round(os.path.getsize(path) / 2**20, 2),
    }
    with open(os.path.join(out, RESULTS_FILE) + ".tmp", "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    os.replace(os.path.join(out, RESULTS_FILE) + ".tmp", os.path.join(out, RESULTS_FILE))
    say(f"val top-1 largest {largest:.2f} %, smallest {smallest:.2f} % "
        f"({evaluator.n_val} val images; {train_time_s / 60:.1f} min of training)")
    return path


def _optimizer(net, cfg: SupernetTrainSettings) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # BN weights/biases and biases
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, momentum=0.9, nesterov=True,
    )


def _sandwich_step(net, optimizer, cfg: SupernetTrainSettings, step: int, x, y) -> float:
    """One optimizer step on the sum of the step's subnets' losses; the mean loss."""
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr_at(step)
    # ofa samples subnets from the global `random`; torch's draws feed dropout
    random.seed(cfg.seed * 1_000_003 + step)
    torch.manual_seed(cfg.seed * 1_000_003 + step)
    optimizer.zero_grad(set_to_none=True)
    archs = [largest_arch()] + ([smallest_arch()] if cfg.smallest else [])
    total = 0.0
    n = len(archs) + cfg.n_random
    for i in range(n):
        if i < len(archs):
            net.set_active_subnet(**archs[i])
        else:
            net.sample_active_subnet()
        loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
        (loss / n).backward()
        total += float(loss.detach())
    optimizer.step()
    return total / n
