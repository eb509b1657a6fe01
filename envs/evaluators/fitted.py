"""The fitted predictor: the MLP that answers the `fitted` benchmark's queries, and its file.

The model is `ofa`'s accuracy-predictor MLP (`ofa.nas.accuracy_predictor.AccuracyPredictor`
over `MobileNetArchEncoder` one-hots) fitted to supernet scores, which answers queries in
microseconds: the paper's setup for the MobileNet-like space. This module owns the model, its
features and its file format (`save_fitted` / `load_fitted`, one `torch.save`d dict: format
"dsmnas-fitted-predictor", version 1, state_dict, meta, the scored samples); fitting it
(sampling subnets, scoring them with a supernet, training) is `trainables.fit_predictor`'s job.
Pure torch + `ofa`; no Ray, no training loop.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from dsmnas.envs.spaces.mobilenet import DEPTHS, EXPANDS, KERNELS, UNITS
from dsmnas.envs.errors import ConfigError, MissingFileError

FORMAT = "dsmnas-fitted-predictor"
VERSION = 1


def arch_encoder(image_size: int):
    from ofa.nas.accuracy_predictor import MobileNetArchEncoder

    return MobileNetArchEncoder(
        image_size_list=[int(image_size)], ks_list=list(KERNELS), expand_list=list(EXPANDS),
        depth_list=list(DEPTHS), n_stage=UNITS,
    )


def arch_features(encoder, archs: Sequence[dict], image_size: int) -> np.ndarray:
    """(N, encoder.n_dim) float32 one-hots of `ofa` subnet dicts at `image_size`; ConfigError
    for an arch that names another image size."""
    out = np.empty((len(archs), encoder.n_dim), dtype=np.float32)
    for i, arch in enumerate(archs):
        size = arch.get("image_size", image_size)
        if size != image_size:
            raise ConfigError(
                f"this predictor was fitted at image size {image_size}, got an arch at {size}"
            )
        out[i] = encoder.arch2feature({**arch, "image_size": image_size})
    return out


def build_model(encoder, hidden_size: int, n_layers: int, device: str):
    """An untrained `AccuracyPredictor` MLP over `encoder`'s features (outputs top-1 / 100)."""
    from ofa.nas.accuracy_predictor import AccuracyPredictor

    return AccuracyPredictor(encoder, hidden_size=hidden_size, n_layers=n_layers, device=device)


def predict_top1(model, x, device: str) -> np.ndarray:
    """Top-1 % predicted by `model` for features `x` (float64, no gradients)."""
    import torch

    with torch.no_grad():
        y = model(torch.as_tensor(x, device=device)).reshape(-1)
    return 100.0 * y.cpu().numpy().astype(np.float64)


def save_fitted(path: str, model, meta: dict, samples: dict) -> None:
    """Write a fitted predictor atomically (a temporary file renamed over `path`). `meta`
    needs image_size, hidden_size and n_layers (what `load_fitted` rebuilds the model from)."""
    import torch

    payload = {
        "format": FORMAT, "version": VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
        "samples": samples,
    }
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
        x = arch_features(self.model.arch_encoder, archs, self.resolution)
        return predict_top1(self.model, x, self.device)

    def evaluate(self, archs: Sequence[dict]) -> list[float]:
        return self.predict(archs).tolist()


def load_fitted(path: str, device: str = "cpu") -> FittedPredictor:
    """Read a file written by `save_fitted` (`dsmnas fit-predictor`); MissingFileError if there
    is none, ConfigError if it is not one."""
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
    model = build_model(arch_encoder(meta["image_size"]), meta["hidden_size"], meta["n_layers"],
                        device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return FittedPredictor(model, meta, device, payload.get("samples"))


__all__ = [
    "FORMAT", "VERSION", "FittedPredictor", "arch_encoder", "arch_features", "build_model",
    "load_fitted", "predict_top1", "save_fitted",
]
