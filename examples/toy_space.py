"""A search space of your own, in one file: a toy network of 8 layers, each one of 5 ops.

This example shows all that a new space needs, touching no file of the platform: a
`SearchSpace` (what an architecture is), a `Benchmark` (what a query answers and costs), a
settings dataclass (the space's own options, which become CLI flags) and the `SpaceSpec` that
ties them together. How to run, from the repository root (Ray puts it on workers' paths):
    dsmnas compare --space examples.toy_space:SPEC --methods dsm,random --seeds 2
Results to expect: val 98.7 ± 0.1 (dsm), 97.1 ± 0.8 (random); the best is 99.05. ~7 s a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsmnas.envs import ConfigError, SpaceSpec
from dsmnas.envs.benchmarks import Benchmark, Metric
from dsmnas.envs.settings import setting
from dsmnas.envs.spaces import SearchSpace

OPS = ("skip", "conv3", "conv5", "sep3", "pool")
PARAMS_K = np.array([0.0, 9.0, 26.0, 5.0, 0.0])  # thousand parameters of one layer of each op


class ToySpace(SearchSpace):
    """L = 8 positions (layers) x C = 5 choices (`OPS`); text form: 8 op names joined by '-'."""

    name, L, C = "toy", 8, len(OPS)

    def parse(self, text: str) -> np.ndarray:
        names = text.split("-")
        if len(names) != self.L or not set(names) <= set(OPS):
            raise ConfigError(f"{text!r} is not a toy architecture: {self.L} of {OPS}, '-'-joined")
        return np.array([OPS.index(n) for n in names], dtype=np.int64)

    def format(self, tokens: np.ndarray) -> str:
        return "-".join(OPS[int(t)] for t in tokens)


@dataclass(frozen=True)
class ToySettings:
    """The space's own settings: `EnvConfig(space=..., interaction=2.0)`, `--interaction 2`."""

    interaction: float = setting(1.0, "weight of the neighbouring layers' term: 0 makes each "
                                      "layer's best op independent")
    landscape: int = setting(0, "seed of the landscape's fixed tables")

    def __post_init__(self):  # a bad value is a ConfigError: one line, exit code 2
        for name, kinds in (("interaction", (int, float)), ("landscape", (int,))):
            if not (type(getattr(self, name)) in kinds and getattr(self, name) >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {getattr(self, name)!r}")


class ToyBenchmark(Benchmark):
    """Validation accuracy 100 * sigmoid(score / 4), score: a (layer, op) table + `interaction` x
    a (layer, op, next op) table, drawn from `landscape`; bigger ops score higher on average.
    Test accuracy (reports only) adds a third table. A query costs 5 s + 0.5 s per k params."""

    space = ToySpace()
    val_metric = "toy_val_acc"
    metrics = {"params_k": Metric("thousand parameters", "sum over the layers")}

    def __init__(self, cfg):  # an EnvConfig; the space's own settings are its attributes
        if cfg.dataset != "toy":
            raise ConfigError(f"the toy space has one dataset, 'toy', got {cfg.dataset!r}")
        self.dataset, self.source = "toy", f"toy landscape {cfg.landscape}"
        rng, shape = np.random.default_rng(cfg.landscape), (self.space.L, self.space.C)
        self._op = 0.5 * np.log1p(PARAMS_K) + rng.normal(0.0, 1.0, shape)
        self._pair = cfg.interaction * rng.normal(0.0, 1.0, (shape[0] - 1, shape[1], shape[1]))
        self._test = rng.normal(0.0, 0.5, shape)

    def _acc(self, tokens: np.ndarray, test: bool = False) -> float:
        t, i = np.asarray(tokens), np.arange(self.space.L)
        score = self._op[i, t].sum() + self._pair[i[:-1], t[:-1], t[1:]].sum()
        return float(100 / (1 + np.exp(-(score + (self._test[i, t].sum() if test else 0)) / 4)))

    def _val(self, tokens: np.ndarray) -> float:  # what a query answers; the base charges it
        return self._acc(tokens)

    def cost_s(self, tokens: np.ndarray) -> float:
        return 5.0 + 0.5 * self.metric("params_k", tokens)

    def report(self, tokens: np.ndarray) -> dict[str, float]:
        return {"toy": self._acc(tokens, test=True)}

    def metric(self, name: str, tokens: np.ndarray) -> float:
        if name == "params_k":
            return float(PARAMS_K[np.asarray(tokens)].sum())
        return super().metric(name, tokens)


SPEC = SpaceSpec(name="toy", space=ToySpace, benchmark=ToyBenchmark, settings=ToySettings,
                 env_defaults={"dataset": "toy", "K": 4, "M": 2, "budget_s": 5000.0},
                 budget="seconds", description="8 layers x 5 ops, closed-form accuracy")
