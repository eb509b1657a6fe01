"""Search-space plug-ins for the tests, named by import string (`tests.fixture_spaces:NAME`),
so that they reach Tune's worker processes as a user's plug-in would.

`FAILING`: NAS-Bench-201 whose benchmark raises after `fail_after` queries: a run that passes
every check before Ray starts and then fails inside its trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.benchmarks.nb201 import NB201Benchmark, load_nb201
from envs.registry import SpaceSpec
from envs.spaces.nb201 import NB201Space


@dataclass(frozen=True)
class FailingSettings:
    table: str | None = field(default=None, metadata={"help": "as nb201's table"})
    fail_after: int | None = field(default=None, metadata={
        "help": "raise RuntimeError at this query (None: never)"})


class FailingBenchmark(NB201Benchmark):
    def __init__(self, *args, fail_after: int | None = None, **kw):
        super().__init__(*args, **kw)
        self.fail_after = fail_after

    def query(self, tokens, charge=True):
        if charge and self.fail_after is not None and self.clock.queries >= self.fail_after:
            raise RuntimeError(f"injected failure at query {self.clock.queries}")
        return super().query(tokens, charge)


def _failing(cfg) -> FailingBenchmark:
    return FailingBenchmark(load_nb201(cfg.table), cfg.dataset, cfg.budget_s, cfg.cache_queries,
                            fail_after=cfg.fail_after)


FAILING = SpaceSpec(
    name="nb201-failing", space=NB201Space, benchmark=_failing, settings=FailingSettings,
    env_defaults={"dataset": "cifar10", "K": 4, "M": 4},
)
