"""Training an OFA MobileNetV3 supernet with the sandwich rule (`dsmnas train-supernet`).

Each step draws one batch and accumulates the gradients of several subnets on it before one
SGD (Nesterov momentum, linear warm-up then cosine learning rate) step: the largest subnet,
optionally the smallest (`smallest`), and `n_random` random ones (`ofa`'s
`sample_active_subnet`). Every subnet's loss is divided by their count, so `lr` means the same
whatever the count. Everything random derives from `seed` and the step number (batch order,
subnet sampling), so a resumed run takes exactly the steps an uninterrupted one takes.

Written to OUT:

    supernet.pt   the checkpoint (`envs.evaluators.supernet.save_checkpoint`), every
                  `checkpoint_every` steps, when `minutes` run out, and at the end; it holds
                  the optimizer state and the step, so `resume=True` continues it
    train.json    the settings, wall time, images/s and the validation accuracy of the
                  largest and smallest subnets (`SubnetEvaluator`), written when training stops

Results to expect: `--steps 540 --threads 1` (Fashion-MNIST 32x32, w1.0, batch 128, largest +
1 random subnet per step) trained in 8.9 min at 130 images/s on a busy 2-core machine; val top-1
largest 89.3 %, smallest 84.5 %, five random subnets 86.1-87.3 % (1,000 calibration and 2,000
val images, ~2.5 s per subnet on one thread).

This module holds the settings and imports no torch, so that `dsmnas train-supernet --help`
answers at once; the loop is `trainables.supernet`, the subcommand `experiments.cli`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.evaluators import FASHION_MNIST
from dsmnas.envs.settings import setting


@dataclass(frozen=True)
class SupernetTrainSettings:
    """How a supernet is trained; `resume` requires the same values as the run it continues
    (except `minutes`, `checkpoint_every`, `progress_every` and `device`)."""

    data: str = setting(FASHION_MNIST, "'fashion-mnist' or an image folder (one subfolder per class)")
    resolution: int = setting(32, "image side in pixels")
    width_mult: float = setting(
        1.2, "OFA MobileNetV3 width, 1.2 (the paper's: the 600M MACs limit binds) or 1.0 (every "
        "subnet is under 600M MACs at 224, so the limit never binds)")
    steps: int = setting(900, "optimizer steps (the learning-rate schedule spans them)")
    batch_size: int = setting(128, "images per step (every subnet of the step sees the same batch)")
    lr: float = setting(0.1, "peak SGD learning rate (Nesterov momentum 0.9, cosine decay)")
    weight_decay: float = setting(3e-5, "L2 on convolution and linear weights (not BN, not biases)")
    warmup_steps: int = setting(50, "linear learning-rate warm-up steps")
    label_smoothing: float = setting(0.1, "cross-entropy label smoothing")
    dropout: float = setting(0.0, "dropout before the classifier")
    n_random: int = setting(1, "random subnets per step, besides the largest")
    smallest: bool = setting(False, "also train the smallest subnet every step (full sandwich)")
    seed: int = setting(0, "seeds the weights, batch order and subnet sampling")
    checkpoint_every: int = setting(100, "steps between checkpoints (0: only when stopping)")
    minutes: float | None = setting(None, "wall-clock limit: checkpoint and stop when reached")
    progress_every: int = setting(20, "steps between progress lines")
    device: str = setting("cpu", "'cpu' or 'cuda'")

    def __post_init__(self):
        for name in ("resolution", "steps", "batch_size", "n_random"):
            value = getattr(self, name)
            low = 0 if name == "n_random" else (8 if name == "resolution" else 1)
            if not (isinstance(value, int) and value >= low):
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("warmup_steps", "checkpoint_every", "seed"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ConfigError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not (isinstance(self.progress_every, int) and self.progress_every >= 1):
            raise ConfigError(f"progress_every must be an integer >= 1, got {self.progress_every!r}")
        if self.width_mult not in (1.0, 1.2):
            raise ConfigError(f"width_mult must be 1.0 or 1.2, got {self.width_mult!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if not self.weight_decay >= 0 or not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"weight_decay must be >= 0 and label_smoothing in [0, 1), got "
                             f"{self.weight_decay!r} and {self.label_smoothing!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"minutes must be > 0 or None, got {self.minutes!r}")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    def lr_at(self, step: int) -> float:
        """Linear warm-up to `lr`, then cosine decay to 0 at `steps`."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * (step - self.warmup_steps) / span))


HELP = "train an OFA MobileNetV3 supernet (the supernet evaluator's)"
"""The one-line help of `dsmnas train-supernet` (whose flags `experiments.cli` makes from
`SupernetTrainSettings` and whose description is this module's docstring)."""
