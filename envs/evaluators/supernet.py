"""OFA MobileNetV3 supernets: construction, checkpoints and the subnet evaluator.

A checkpoint (`save_checkpoint`) is one `torch.save`d dict:

    format        "dsmnas-ofa-supernet", version 1
    meta          everything needed to rebuild and describe the net: width_mult, n_classes,
                  dropout, resolution, dataset (name), data (the source string it was trained
                  on), ks_list / expand_ratio_list / depth_list, steps (training steps done),
                  seed and the training settings
    state_dict    the supernet's weights and BatchNorm statistics
    ...           anything else the trainer keeps (optimizer state, for resuming)

`SubnetEvaluator` scores subnets the way weight-sharing NAS does: for each `ofa` arch dict it
activates the subnet inside the supernet, recalibrates BatchNorm running statistics on a fixed
set of training images (the supernet's statistics belong to no single subnet) and measures
top-1 accuracy in percent on a fixed subset of the validation split. Same arch, same number.
Pure torch + `ofa`; no Ray (`trainables.evaluator_service` serves it through actors, and
`trainables.supernet` trains the supernets whose checkpoints this module writes and reads).
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
import torch.nn as nn

from dsmnas.envs.spaces.mobilenet import DEPTHS as DEPTH_LIST
from dsmnas.envs.spaces.mobilenet import EXPANDS as EXPAND_LIST
from dsmnas.envs.spaces.mobilenet import KERNELS as KS_LIST
from dsmnas.envs.spaces.mobilenet import MAX_DEPTH, UNITS as N_UNITS, check_width
from dsmnas.envs.errors import ConfigError, MissingFileError

N_LAYERS = N_UNITS * MAX_DEPTH
FORMAT = "dsmnas-ofa-supernet"
VERSION = 1
META_KEYS = ("width_mult", "n_classes", "dropout", "resolution", "dataset", "data", "steps", "seed")
"""Keys every checkpoint's meta has (the trainer adds its settings)."""


def build_supernet(width_mult: float = 1.0, n_classes: int = 10, dropout: float = 0.0):
    """OFA's elastic MobileNetV3: kernels {3, 5, 7}, expand ratios {3, 4, 6}, depths {2, 3, 4}."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    check_width(width_mult)
    if not (isinstance(n_classes, int) and n_classes >= 2):
        raise ConfigError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    return OFAMobileNetV3(
        n_classes=n_classes, bn_param=(0.1, 1e-5), dropout_rate=float(dropout),
        width_mult=float(width_mult), ks_list=list(KS_LIST),
        expand_ratio_list=list(EXPAND_LIST), depth_list=list(DEPTH_LIST),
    )


def largest_arch() -> dict[str, list[int]]:
    return {"ks": [max(KS_LIST)] * N_LAYERS, "e": [max(EXPAND_LIST)] * N_LAYERS,
            "d": [max(DEPTH_LIST)] * N_UNITS}


def smallest_arch() -> dict[str, list[int]]:
    return {"ks": [min(KS_LIST)] * N_LAYERS, "e": [min(EXPAND_LIST)] * N_LAYERS,
            "d": [min(DEPTH_LIST)] * N_UNITS}


def check_arch(arch) -> dict[str, list[int]]:
    """`arch` as a plain `{"ks": [20], "e": [20], "d": [5]}` dict of ints, or ValueError."""
    expected = (f"an ofa subnet dict {{'ks': [{N_LAYERS} of {list(KS_LIST)}], 'e': [{N_LAYERS} "
                f"of {list(EXPAND_LIST)}], 'd': [{N_UNITS} of {list(DEPTH_LIST)}]}}")
    if not isinstance(arch, dict) or set(arch) != {"ks", "e", "d"}:
        raise ConfigError(f"not {expected}: {arch!r}")
    out = {}
    for key, n, allowed in (("ks", N_LAYERS, KS_LIST), ("e", N_LAYERS, EXPAND_LIST),
                            ("d", N_UNITS, DEPTH_LIST)):
        try:
            values = [int(v) for v in arch[key]]
        except (TypeError, ValueError):
            raise ConfigError(
                f"{key!r} must be a list of integers in {expected}: {arch!r}"
            ) from None
        if len(values) != n or any(v not in allowed for v in values):
            raise ConfigError(
                f"{key!r} must be {n} values in {list(allowed)}, got {arch[key]!r} "
                f"(expected {expected})"
            )
        out[key] = values
    return out


# -- checkpoints -----------------------------------------------------------------------------
def save_checkpoint(path: str, net: nn.Module, meta: dict, **extra) -> str:
    """Write `net`'s weights with `meta` (and `extra`) atomically: a temporary file in the same
    folder is renamed over `path`, so a kill leaves the old checkpoint or the new one."""
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ConfigError(f"checkpoint meta lacks {missing}; it needs {list(META_KEYS)}")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save({"format": FORMAT, "version": VERSION, "meta": dict(meta), "state_dict": state,
                **extra}, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str) -> dict:
    """The checkpoint dict in `path` (tensors on CPU); ValueError when it is not one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"supernet checkpoint {path} not found (`dsmnas train-supernet "
                                f"--out DIR` writes DIR/supernet.pt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file: say which, and what it should be
        why = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(f"{path} is not a supernet checkpoint of `dsmnas train-supernet` "
                         f"({type(e).__name__}: {why})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a supernet checkpoint of `dsmnas train-supernet` "
                         f"(no {FORMAT!r} format marker)")
    if ckpt.get("version") != VERSION:
        raise ConfigError(f"{path}: supernet checkpoint version {ckpt.get('version')!r}; this "
                         f"code reads version {VERSION}")
    return ckpt


def load_checkpoint(path: str, device: str = "cpu") -> tuple[nn.Module, dict]:
    """(supernet in eval mode on `device`, meta) from a checkpoint."""
    ckpt = read_checkpoint(path)
    meta = ckpt["meta"]
    net = build_supernet(meta["width_mult"], meta["n_classes"], meta["dropout"])
    try:
        net.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, AssertionError) as e:
        raise ConfigError(f"{path}: weights do not fit a w{meta['width_mult']} supernet with "
                         f"{meta['n_classes']} classes ({str(e).splitlines()[0]})") from None
    return net.to(device).eval(), meta


# -- BatchNorm recalibration -----------------------------------------------------------------
def _batchnorms(net: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches) -> None:
    """Reset every BatchNorm's running statistics and set them to the cumulative average of
    the active subnet's batch statistics over `batches` (momentum None); only BatchNorm runs in
    train mode, so dropout stays off. `ofa`'s `set_running_statistics` does the same with a
    deep copy of the whole supernet per call, which costs more than the forward passes here."""
    bns = _batchnorms(net)
    momenta = [bn.momentum for bn in bns]
    net.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    try:
        for x in batches:
            net(x)
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        net.eval()


@torch.inference_mode()
def top1_percent(net: nn.Module, images, batch_size: int, channels_last: bool = True) -> float:
    """Top-1 accuracy in percent of `net` (eval mode) on `images` (an `ImageSet`)."""
    device = next(net.parameters()).device
    labels = images.labels.to(device)
    correct = 0
    for start in range(0, len(labels), batch_size):
        index = slice(start, start + batch_size)
        logits = net(images.batch(index, device=device, channels_last=channels_last))
        correct += int((logits.argmax(1) == labels[index]).sum())
    return 100.0 * correct / len(labels)


class SubnetEvaluator:
    """Validation accuracy (percent) of subnets of a trained supernet checkpoint.

    Arguments:
        checkpoint: a `save_checkpoint` file.
        data: images to score on (default: the checkpoint's `meta["data"]`); must have the
            checkpoint's classes.
        device: "cpu" or "cuda".
        calib_images: training images (a fixed, seeded subset) that BatchNorm statistics are
            recalibrated on for every subnet.
        val_images: size of the fixed, seeded subset of the val split that accuracy is measured
            on (None: the whole split).
        batch_size: images per forward pass.
        channels_last: channels-last model and inputs (3-5x faster depthwise convs on CPU).
        seed: chooses the calibration and validation subsets.

    Attributes: `resolution`, `meta`, `checkpoint`, `data`, `n_calib`, `n_val`, `eval_time_s`
    (seconds spent in `evaluate`) and `evaluations`.
    """

    def __init__(
        self,
        checkpoint: str,
        data: str | None = None,
        device: str = "cpu",
        calib_images: int = 1000,
        val_images: int | None = 2000,
        batch_size: int = 500,
        channels_last: bool = True,
        seed: int = 0,
    ):
        # images are read only when an evaluator is built
        from dsmnas.envs.evaluators.images import load_images

        if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
            raise ConfigError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device")
        for name, value in (("calib_images", calib_images), ("batch_size", batch_size)):
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if val_images is not None and not (isinstance(val_images, int) and val_images >= 1):
            raise ConfigError(f"val_images must be an integer >= 1 or None, got {val_images!r}")
        self.checkpoint = os.fspath(checkpoint)
        self.device = str(device)
        self.batch_size = batch_size
        self.channels_last = bool(channels_last)
        net, self.meta = load_checkpoint(self.checkpoint, device=self.device)
        self.resolution = int(self.meta["resolution"])
        self.data = self.meta["data"] if data is None else data
        train, val = (load_images(self.data, self.resolution, s) for s in ("train", "val"))
        if len(train.classes) != self.meta["n_classes"]:
            raise ConfigError(f"data {self.data!r} has {len(train.classes)} classes, the "
                             f"supernet {self.checkpoint} {self.meta['n_classes']}")
        rng = np.random.default_rng(seed)
        self.calib = train.subset(np.sort(rng.choice(len(train), min(calib_images, len(train)),
                                                     replace=False)))
        n_val = len(val) if val_images is None else min(val_images, len(val))
        self.val = val.subset(np.sort(rng.choice(len(val), n_val, replace=False)))
        self.n_calib, self.n_val = len(self.calib), len(self.val)
        self._calib_batches = [self.calib.batch(slice(s, s + batch_size), self.device,
                                                self.channels_last)
                               for s in range(0, self.n_calib, batch_size)]
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self._test = None
        self.eval_time_s = 0.0
        self.evaluations = 0

    def activate(self, arch: dict) -> None:
        """Make `arch` the supernet's active subnet, with recalibrated BatchNorm."""
        self.net.set_active_subnet(**check_arch(arch))
        recalibrate_bn(self.net, self._calib_batches)

    def evaluate(self, archs: list[dict]) -> list[float]:
        """Top-1 validation accuracy in percent of each arch (all are checked first)."""
        archs = [check_arch(a) for a in archs]
        start = time.perf_counter()
        accs = []
        for arch in archs:
            self.activate(arch)
            accs.append(top1_percent(self.net, self.val, self.batch_size, self.channels_last))
        self.eval_time_s += time.perf_counter() - start
        self.evaluations += len(archs)
        return accs

    def test_accuracy(self, arch: dict) -> float:
        """Top-1 accuracy in percent on the whole test split: for reports only."""
        if self._test is None:
            from dsmnas.envs.evaluators.images import load_images

            self._test = load_images(self.data, self.resolution, "test")
        self.activate(arch)
        return top1_percent(self.net, self._test, self.batch_size, self.channels_last)
