"""Benchmarks: score architectures and keep the budget clock. `make_benchmark` picks one."""

from __future__ import annotations

from envs.benchmarks.base import Benchmark, BudgetClock, Query
from envs.benchmarks.nb201 import DATASETS, NB201Benchmark, NB201Data, load_nb201


def make_benchmark(
    space: str,
    dataset: str,
    table: str | None = None,
    budget_s: float | None = None,
    cache_queries: bool = False,
) -> Benchmark:
    """The benchmark of `space` on `dataset`; ValueError naming a bad value."""
    if space == "nb201":
        return NB201Benchmark(load_nb201(table), dataset, budget_s, cache_queries)
    raise ValueError(f"no benchmark for search space {space!r}; allowed: nb201")


__all__ = [
    "Benchmark", "BudgetClock", "Query", "DATASETS", "NB201Benchmark", "NB201Data",
    "load_nb201", "make_benchmark",
]
