"""Benchmarks: score architectures and keep the budget clock. `make_benchmark` picks one."""

from __future__ import annotations

from envs.benchmarks.base import Benchmark, BudgetClock, Query
from envs.benchmarks.nb201 import DATASETS, NB201Benchmark, NB201Data, load_nb201


def make_benchmark(cfg) -> Benchmark:
    """The benchmark an `EnvConfig` describes; ValueError naming a bad value."""
    if cfg.space == "nb201":
        if cfg.budget_queries is not None:
            raise ValueError("the nb201 space counts its budget in simulated seconds: use budget_s")
        return NB201Benchmark(load_nb201(cfg.table), cfg.dataset, cfg.budget_s, cfg.cache_queries)
    if cfg.space == "mobilenet":
        from envs.benchmarks.mobilenet import make_mobilenet_benchmark

        return make_mobilenet_benchmark(cfg)
    raise ValueError(f"no benchmark for search space {cfg.space!r}; allowed: mobilenet, nb201")


__all__ = [
    "Benchmark", "BudgetClock", "Query", "DATASETS", "NB201Benchmark", "NB201Data",
    "load_nb201", "make_benchmark",
]
