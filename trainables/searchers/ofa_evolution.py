"""`ofa-evolution`: the Once-for-All authors' own evolutionary search, on our budget clock.

`ofa.nas.search_algorithm.EvolutionFinder` (regularized evolution: a random population within
the MACs limit, then per generation the top `parent_ratio` kept, `mutation_ratio` of the
children mutated from them and the rest crossed over, every child redrawn until it is within
the limit) run unchanged; only its accuracy predictor is ours: each architecture it asks
about is one charged query of the benchmark, so it spends exactly the budget DSM-NAS spends.
The generations are set so that the population plus the children fit the query budget
(population 100, 10,000 queries: 99 generations). Resolution is fixed to the benchmark's.
MobileNet-like space only. `EvolutionFinder` draws from Python's and numpy's global random
generators: both are seeded from the search's seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks import Benchmark
from dsmnas.trainables.search import SearchResult
from dsmnas.trainables.searchers.base import Progress, QueryLog, parse_settings
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import setting


@dataclass(frozen=True)
class OFAEvolutionSettings:
    population_size: int = setting(100, "members per generation (OFA's EvolutionFinder: 100)")
    parent_ratio: float = setting(0.25, "share of each generation kept as parents (OFA: 0.25)")
    mutation_ratio: float = setting(
        0.5, "share of the next generation made by mutation, the rest by crossover (OFA: 0.5)")
    arch_mutate_prob: float = setting(0.1, "probability that a mutation changes each gene (OFA: 0.1)")

    def __post_init__(self):
        if self.population_size < 2:
            raise ConfigError(f"population_size must be >= 2, got {self.population_size!r}")
        for name in ("parent_ratio", "mutation_ratio", "arch_mutate_prob"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {v!r}")


class _BudgetSpent(Exception):
    pass


class _Predictor:
    """What `EvolutionFinder` asks of an accuracy predictor, answered by charged queries."""

    def __init__(self, log: QueryLog, resolution: int):
        from dsmnas.envs.evaluators.fitted import arch_encoder

        self.log = log
        self.arch_encoder = arch_encoder(resolution)

    def predict_acc(self, samples: list[dict]):
        import torch

        accs = []
        for sample in samples:
            acc = self.log.query(self.log.space.from_ofa(sample))
            if acc is None:
                raise _BudgetSpent
            accs.append(acc)
        return torch.tensor(accs)


class _Efficiency:
    def __init__(self, benchmark):
        self.benchmark = benchmark

    def get_efficiency(self, sample: dict) -> float:
        return self.benchmark.macs_m(self.benchmark.space.from_ofa(sample))


def check_ofa_evolution(env_config: EnvConfig, settings: dict[str, Any] | None = None) -> None:
    """OFA's EvolutionFinder mutates OFA subnet dicts: the MobileNet-like space only."""
    from dsmnas.envs.registry import get_space
    from dsmnas.envs.spaces.mobilenet import MobileNetSpace

    if not isinstance(get_space(env_config.space), MobileNetSpace):
        raise ConfigError(
            f"ofa-evolution searches the MobileNet-like (OFA) space only, not "
            f"{env_config.spec.name!r}"
        )
    unsupported = sorted(set(dict(env_config.limits or ())) - {"macs_m"})
    if unsupported:
        raise ConfigError(f"ofa-evolution's EvolutionFinder limits MACs only, not {unsupported}")


def run_ofa_evolution(
    env_config: EnvConfig,
    settings: dict[str, Any],
    progress: Progress = None,
    *,
    benchmark: Benchmark | None = None,
) -> SearchResult:
    """One run of OFA's `EvolutionFinder` on the benchmark `env_config` describes."""
    from ofa.nas.search_algorithm import EvolutionFinder

    (s,) = parse_settings("ofa-evolution", settings, OFAEvolutionSettings)
    check_ofa_evolution(env_config)
    log = QueryLog(env_config, "ofa-evolution", s, progress, benchmark)
    bench = log.benchmark
    budget = bench.clock.budget_queries
    generations = max(1, (budget - s.population_size) // s.population_size)
    limit = bench.limits.get("macs_m", float("inf"))
    finder = EvolutionFinder(
        _Efficiency(bench), _Predictor(log, bench.resolution),
        population_size=s.population_size, max_time_budget=generations,
        parent_ratio=s.parent_ratio, mutation_ratio=s.mutation_ratio,
        arch_mutate_prob=s.arch_mutate_prob, resolution_mutate_prob=0.0,
    )
    seed = env_config.seed
    random.seed(seed)
    np.random.seed(None if seed is None else seed % 2**32)
    try:
        finder.run_evolution_search(limit, verbose=False)
    except _BudgetSpent:
        pass
    return log.result(generations=generations)
