"""Benchmarks: score architectures and keep the budget clock. `make_benchmark` builds the one
an `EnvConfig` describes, through its space's `SpaceSpec`."""

from __future__ import annotations

from dsmnas.envs.benchmarks.base import Benchmark, BudgetClock, Metric, Query
from dsmnas.envs.benchmarks.nb201 import DATASETS, NB201Benchmark, NB201Data, load_nb201


def make_benchmark(cfg) -> Benchmark:
    """The benchmark an `EnvConfig` describes, with its limits, its objectives (when
    `--objectives` names some) and its clock (budget, cache, workers); ConfigError naming a
    bad value."""
    spec = cfg.spec
    cfg.validate(spec.space().L)
    benchmark = spec.benchmark(cfg)
    benchmark.set_limits(dict(cfg.limits or ()))
    if cfg.objectives is not None:
        from dsmnas.envs.objectives import Objectives

        scale = None if spec.objectives is None else spec.objectives(benchmark)
        benchmark.objectives = Objectives.build(cfg.objectives, benchmark, scale, spec.name)
        benchmark.objective_scale = scale
    benchmark.start_clock(cfg)
    return benchmark


__all__ = [
    "Benchmark", "BudgetClock", "Metric", "Query", "DATASETS", "NB201Benchmark", "NB201Data",
    "load_nb201", "make_benchmark",
]
