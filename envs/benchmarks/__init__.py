"""Benchmarks: score architectures and keep the budget clock. `make_benchmark` builds the one
an `EnvConfig` describes, through its space's `SpaceSpec`."""

from __future__ import annotations

from dsmnas.envs.benchmarks.base import Benchmark, BudgetClock, Metric, Query
from dsmnas.envs.benchmarks.nb201 import DATASETS, NB201Benchmark, NB201Data, load_nb201


def make_benchmark(cfg) -> Benchmark:
    """The benchmark an `EnvConfig` describes, with its limits and its clock (budget, cache,
    workers); ConfigError naming a bad value."""
    spec = cfg.spec
    cfg.validate(spec.space().L)
    benchmark = spec.benchmark(cfg)
    benchmark.set_limits(dict(cfg.limits or ()))
    benchmark.start_clock(cfg)
    return benchmark


__all__ = [
    "Benchmark", "BudgetClock", "Metric", "Query", "DATASETS", "NB201Benchmark", "NB201Data",
    "load_nb201", "make_benchmark",
]
