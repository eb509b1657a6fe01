"""The fitted predictor: an MLP fitted to supernet evaluations, then used as the reward.

This is the paper's setup for the MobileNet-like space: score random subnets with the trained
supernet (`SubnetEvaluator`, or the Ray evaluator service through `EvaluatorClient`), fit
`ofa`'s accuracy-predictor MLP (`ofa.nas.accuracy_predictor.AccuracyPredictor` over
`MobileNetArchEncoder` one-hots) to them, and answer queries in microseconds.

`fit_predictor` samples, scores, trains on a split, reports train and held-out RMSE (in
accuracy points) and Spearman rank correlation, and saves one file (state dict, meta, the
scored samples) atomically. `load_fitted` reads it back as a `FittedPredictor`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from envs.spaces.mobilenet import DEPTHS, EXPANDS, KERNELS, UNITS, MobileNetSpace
from envs.errors import ConfigError, MissingFileError

FORMAT = "dsmnas-fitted-predictor"
VERSION = 1
_SPACE = MobileNetSpace()


def arch_encoder(image_size: int):
    from ofa.nas.accuracy_predictor import MobileNetArchEncoder

    return MobileNetArchEncoder(
        image_size_list=[int(image_size)], ks_list=list(KERNELS), expand_list=list(EXPANDS),
        depth_list=list(DEPTHS), n_stage=UNITS,
    )


def sample_archs(n: int, seed: int) -> list[dict]:
    """`n` distinct random subnets drawn by `MobileNetSpace.sample` (OFA's distribution:
    depth uniform per unit, (kernel, expand) uniform per layer) from a seeded generator."""
    rng = np.random.default_rng(seed)
    seen: dict[str, dict] = {}
    while len(seen) < n:
        tokens = _SPACE.sample(rng)
        seen.setdefault(_SPACE.format(tokens), _SPACE.to_ofa(tokens))
    return list(seen.values())


def _features(encoder, archs: Sequence[dict], image_size: int) -> np.ndarray:
    out = np.empty((len(archs), encoder.n_dim), dtype=np.float32)
    for i, arch in enumerate(archs):
        size = arch.get("image_size", image_size)
        if size != image_size:
            raise ConfigError(
                f"this predictor was fitted at image size {image_size}, got an arch at {size}"
            )
        out[i] = encoder.arch2feature({**arch, "image_size": image_size})
    return out


def _source_info(evaluate) -> dict:
    """resolution / meta / checkpoint of what scores the archs, where it says."""
    if hasattr(evaluate, "info") and callable(evaluate.info):
        return dict(evaluate.info())
    info = {}
    for attr in ("resolution", "meta", "checkpoint"):
        if hasattr(evaluate, attr):
            info[attr] = getattr(evaluate, attr)
    return info


def _predictor(encoder, hidden_size: int, n_layers: int, device: str):
    from ofa.nas.accuracy_predictor import AccuracyPredictor

    return AccuracyPredictor(encoder, hidden_size=hidden_size, n_layers=n_layers, device=device)


def _predict(model, x, device: str) -> np.ndarray:
    import torch

    with torch.no_grad():
        y = model(torch.as_tensor(x, device=device)).reshape(-1)
    return 100.0 * y.cpu().numpy().astype(np.float64)


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
    x = _features(encoder, archs, image_size)
    order = np.random.default_rng(seed).permutation(len(archs))
    n_held = max(2, int(round(held_out * len(archs))))
    held_idx, train_idx = order[:n_held], order[n_held:]

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _predictor(encoder, hidden_size, n_layers, device)
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

    train_rmse, train_rho = _metrics(_predict(model, x[train_idx], device), y[train_idx])
    held_rmse, held_rho = _metrics(_predict(model, x[held_idx], device), y[held_idx])
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
    payload = {
        "format": FORMAT, "version": VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
        "samples": {"archs": archs, "val_acc": y.tolist()},
    }
    _save_atomic(payload, out)
    return metrics


def _save_atomic(payload: dict, path: str) -> None:
    import torch

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class FittedPredictor:
    """A loaded fitted predictor: `predict(archs)` -> top-1 % array; also the evaluator
    interface (`evaluate`, `resolution`, `meta`) so it can stand in for a SubnetEvaluator."""

    def __init__(self, model, meta: dict, device: str, samples: dict | None = None):
        self.model = model
        self.meta = meta
        self.device = device
        self.samples = samples or {}
        self.resolution = int(meta["image_size"])

    def predict(self, archs: Sequence[dict]) -> np.ndarray:
        if not archs:
            return np.zeros(0)
        x = _features(self.model.arch_encoder, archs, self.resolution)
        return _predict(self.model, x, self.device)

    def evaluate(self, archs: Sequence[dict]) -> list[float]:
        return self.predict(archs).tolist()


def load_fitted(path: str, device: str = "cpu") -> FittedPredictor:
    """Read a file written by `fit_predictor`; ValueError if it is not one."""
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"fitted predictor {path!r} not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ConfigError(
            f"{path} is not a fitted predictor file (`dsmnas fit-predictor`): "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a fitted predictor file (`dsmnas fit-predictor`)")
    if payload.get("version") != VERSION:
        raise ConfigError(
            f"{path} is a fitted predictor of version {payload.get('version')!r}; this code "
            f"reads version {VERSION}"
        )
    meta = payload["meta"]
    model = _predictor(arch_encoder(meta["image_size"]), meta["hidden_size"], meta["n_layers"], device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return FittedPredictor(model, meta, device, payload.get("samples"))


__all__ = ["FittedPredictor", "arch_encoder", "fit_predictor", "load_fitted", "sample_archs"]
