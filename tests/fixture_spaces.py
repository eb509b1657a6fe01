"""Search-space plug-ins for the tests, named by import string (`tests.fixture_spaces:NAME`),
so that they reach Tune's worker processes as a user's plug-in would.

`FAILING`: NAS-Bench-201 whose benchmark raises after `fail_after` queries: a run that passes
every check before Ray starts and then fails inside its trial.
`TOY`: a space of its own (5 positions x 4 choices, a query budget, a limitable `size` metric,
test scores for reports) in a few lines: what a plug-in needs and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsmnas.envs.benchmarks.base import Benchmark, Metric
from dsmnas.envs.benchmarks.nb201 import NB201Benchmark, load_nb201
from dsmnas.envs.registry import SpaceSpec
from dsmnas.envs.settings import setting
from dsmnas.envs.spaces.base import SearchSpace
from dsmnas.envs.spaces.nb201 import NB201Space


@dataclass(frozen=True)
class FailingSettings:
    table: str | None = setting(None, "as nb201's table")
    fail_after: int | None = setting(None, "raise RuntimeError at this query (None: never)")


class FailingBenchmark(NB201Benchmark):
    def __init__(self, *args, fail_after: int | None = None, **kw):
        super().__init__(*args, **kw)
        self.fail_after = fail_after

    def _answers(self, batch, cached, charged):
        # called after the charge: query number fail_after (from 0) fails, as before it
        if charged and self.fail_after is not None and self.clock.queries > self.fail_after:
            raise RuntimeError(f"injected failure at query {self.clock.queries - 1}")
        return super()._answers(batch, cached, charged)


def _failing(cfg) -> FailingBenchmark:
    return FailingBenchmark(load_nb201(cfg.table), cfg.dataset, fail_after=cfg.fail_after)


FAILING = SpaceSpec(
    name="nb201-failing", space=NB201Space, benchmark=_failing, settings=FailingSettings,
    env_defaults={"dataset": "cifar10", "K": 4, "M": 4},
)


# -- TOY: a space of its own, budget in queries, one limitable metric ---------------------------

class ToySpace(SearchSpace):
    """5 positions x 4 choices; the text form is the digits, e.g. '01230'."""

    name = "toy"
    L, C = 5, 4

    def parse(self, text):
        if not (isinstance(text, str) and len(text) == self.L and set(text) <= set("0123")):
            raise ValueError(f"not a toy architecture: {text!r}")
        return np.array([int(c) for c in text], dtype=np.int64)

    def format(self, tokens):
        return "".join(str(int(t)) for t in tokens)


@dataclass(frozen=True)
class ToySettings:
    peak: str = setting("31203", "the best architecture")


class ToyBenchmark(Benchmark):
    """Accuracy falls with the distance to `peak`; `size` is the sum of the tokens."""

    space = ToySpace()
    val_metric = "toy_val"
    metrics = {"size": Metric("token sum")}

    def __init__(self, peak: str):
        self.peak = self.space.parse(peak)
        self.dataset, self.source = "toy", "toy"

    def _val(self, tokens):
        return 90.0 - 7.0 * float(np.abs(np.asarray(tokens) - self.peak).sum()) / self.space.L

    def cost_s(self, tokens):
        return 0.0

    def report(self, tokens):
        return {"toy": self._val(tokens) - 1.0}

    def metric(self, name, tokens):
        return float(np.sum(tokens)) if name == "size" else super().metric(name, tokens)


TOY = SpaceSpec(
    name="toy", space=ToySpace, settings=ToySettings,
    benchmark=lambda cfg: ToyBenchmark(cfg.peak),
    env_defaults={"K": 3, "M": 2, "budget_queries": 40}, budget="queries",
)


# -- a table of one's own (`--space table:FILE`) -----------------------------------------------
def write_table(folder, cost: bool = False, name: str = "mlp") -> str:
    """A small CSV in the documented format: 3 positions (activation, width, depth), 16 of the
    18 combinations present, a reward with one best row, test accuracy and a parameter count;
    `cost` adds a cost column (the budget is then in simulated seconds). Returns its path."""
    import itertools
    from pathlib import Path

    import pandas as pd

    rows = []
    for act, width, depth in itertools.product(["relu", "tanh"], [16, 32, 64], [1, 2, 3]):
        if (act, width, depth) in (("tanh", 64, 3), ("relu", 16, 3)):
            continue  # absent: the space is the rows, not the product
        val = 60 + 5 * [16, 32, 64].index(width) + 3 * depth - 4 * (act == "tanh")
        val -= 6 * (width == 64 and depth == 3)  # the best is relu|32|3... or relu|64|2
        rows.append({"activation": act, "width": width, "depth": depth, "val_acc": val,
                     "test_acc": val - 1.5, "params_m": width * depth / 100,
                     **({"train_time_s": 10.0 * depth} if cost else {})})
    path = Path(folder) / f"{name}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    fmt = ["metrics: [params_m]", "K: 3", "M: 2"]
    fmt += ["cost: train_time_s", "budget: 600"] if cost else ["budget: 40"]
    (Path(folder) / f"{name}.yaml").write_text("\n".join(fmt) + "\n")
    return str(path)
