"""Fitting the `fitted` benchmark's predictor (`dsmnas fit-predictor`): score seeded random
subnets with a trained supernet, train `ofa`'s accuracy-predictor MLP on them, save it.

`fit_predictor` samples (`sample_archs`), scores with any evaluator (`SubnetEvaluator`
in-process, or the Ray evaluator service through `EvaluatorClient`), trains on a split,
reports train and held-out RMSE (in accuracy points) and Spearman rank correlation, and saves
one file through `envs.evaluators.fitted.save_fitted`, which `load_fitted` reads back for the
benchmark. The model, its features and the file format live there; the training loop here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.evaluators.fitted import (
    arch_encoder,
    arch_features,
    build_model,
    predict_top1,
    save_fitted,
)
from dsmnas.envs.spaces.mobilenet import MobileNetSpace

_SPACE = MobileNetSpace()


def sample_archs(n: int, seed: int) -> list[dict]:
    """`n` distinct random subnets drawn by `MobileNetSpace.sample` (OFA's distribution:
    depth uniform per unit, (kernel, expand) uniform per layer) from a seeded generator."""
    rng = np.random.default_rng(seed)
    seen: dict[int, dict] = {}
    while len(seen) < n:
        tokens = _SPACE.sample(rng)
        seen.setdefault(_SPACE.key(tokens), _SPACE.to_ofa(tokens))
    return list(seen.values())


def _source_info(evaluate) -> dict:
    """resolution / meta / checkpoint of what scores the archs, where it says."""
    if hasattr(evaluate, "info") and callable(evaluate.info):
        return dict(evaluate.info())
    info = {}
    for attr in ("resolution", "meta", "checkpoint"):
        if hasattr(evaluate, attr):
            info[attr] = getattr(evaluate, attr)
    return info


def _metrics(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    from scipy.stats import spearmanr

    rmse = float(np.sqrt(np.mean((pred - true) ** 2)))
    rho = float(spearmanr(pred, true).statistic) if len(true) > 2 else float("nan")
    return rmse, rho


def fit_predictor(
    evaluate: Callable[[list[dict]], Sequence[float]],
    n_samples: int,
    out: str,
    image_size: int | None = None,
    seed: int = 0,
    epochs: int = 300,
    held_out: float = 0.2,
    hidden_size: int = 400,
    n_layers: int = 3,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 128,
    eval_batch: int = 100,
    source: str | None = None,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> dict:
    """Score `n_samples` seeded random subnets with `evaluate` (list[dict] -> list of
    top-1 %), fit the MLP on (one-hot encoding -> accuracy / 100) over a (1 - held_out)
    split, save it to `out` and return the metrics.

    evaluate: an `EvaluatorClient`, a `SubnetEvaluator`'s `evaluate`, or any callable;
        objects with `info()` or `resolution`/`meta`/`checkpoint` also give the image size,
        the source checkpoint and its meta (width_mult, dataset) for the saved meta.
    Returns train_rmse / held_out_rmse (accuracy points), train_spearman /
    held_out_spearman, n_train, n_held_out, eval_time_s, fit_time_s.
    """
    import torch

    if n_samples < 10:
        raise ConfigError(f"n_samples must be >= 10 to hold some out, got {n_samples!r}")
    if not 0 < held_out < 1:
        raise ConfigError(f"held_out must be a fraction in (0, 1), got {held_out!r}")
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs!r}")
    target = evaluate if hasattr(evaluate, "evaluate") else getattr(evaluate, "__self__", None)
    score = evaluate.evaluate if hasattr(evaluate, "evaluate") else evaluate
    info = _source_info(target) if target is not None else {}
    image_size = image_size or info.get("resolution")
    if not image_size:
        raise ConfigError("image_size is needed: the evaluator does not tell its resolution")
    log = log or (lambda msg: None)

    archs = sample_archs(n_samples, seed)
    start = time.perf_counter()
    accs: list[float] = []
    for i in range(0, len(archs), eval_batch):
        accs.extend(float(a) for a in score(archs[i:i + eval_batch]))
        log(f"scored {len(accs)}/{len(archs)} subnets")
    eval_time_s = time.perf_counter() - start
    y = np.asarray(accs, dtype=np.float64)
    if y.shape != (len(archs),) or not np.all(np.isfinite(y)) or y.min() < 0 or y.max() > 100:
        raise ConfigError(
            f"evaluate must return one top-1 accuracy in [0, 100] per arch; got {len(y)} "
            f"values for {len(archs)} archs, range [{np.nanmin(y):.3g}, {np.nanmax(y):.3g}]"
        )

    encoder = arch_encoder(image_size)
    x = arch_features(encoder, archs, image_size)
    order = np.random.default_rng(seed).permutation(len(archs))
    n_held = max(2, int(round(held_out * len(archs))))
    held_idx, train_idx = order[:n_held], order[n_held:]

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(encoder, hidden_size, n_layers, device)
        xt = torch.as_tensor(x[train_idx], device=device)
        yt = torch.as_tensor(y[train_idx] / 100.0, dtype=torch.float32, device=device)
        model.base_acc.data.fill_(float(yt.mean()))
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps_per_epoch = max(1, -(-len(train_idx) // batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(train_idx), device=device)
            for j in range(0, len(train_idx), batch_size):
                b = perm[j:j + batch_size]
                loss = torch.nn.functional.mse_loss(model(xt[b]).reshape(-1), yt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
    fit_time_s = time.perf_counter() - start

    train_rmse, train_rho = _metrics(predict_top1(model, x[train_idx], device), y[train_idx])
    held_rmse, held_rho = _metrics(predict_top1(model, x[held_idx], device), y[held_idx])
    metrics = {
        "train_rmse": train_rmse, "held_out_rmse": held_rmse,
        "train_spearman": train_rho, "held_out_spearman": held_rho,
        "held_out_std": float(np.std(y[held_idx])),
        "n_train": int(len(train_idx)), "n_held_out": int(n_held),
        "eval_time_s": eval_time_s, "fit_time_s": fit_time_s,
    }
    src_meta = info.get("meta") or {}
    meta = {
        "image_size": int(image_size), "n_samples": len(archs), "seed": int(seed),
        "epochs": int(epochs), "hidden_size": int(hidden_size), "n_layers": int(n_layers),
        "metrics": metrics,
        "source": source or info.get("checkpoint") or type(target or evaluate).__name__,
        "width_mult": src_meta.get("width_mult"), "dataset": src_meta.get("dataset"),
    }
    save_fitted(out, model, meta, {"archs": archs, "val_acc": y.tolist()})
    return metrics


__all__ = ["fit_predictor", "sample_archs"]
