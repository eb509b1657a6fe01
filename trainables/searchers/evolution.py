"""`evolution`: regularized (aging) evolution, Real et al. 2019, Algorithm 1.

Rules, as NAS-Bench-201's released R-EA baseline (AutoDL-Projects
`exps/NAS-Bench-201-algos/R_EA.py`; population 10 from `scripts-search/NAS-Bench-201-algos/
R-EA.sh`, tournament size 3 from the repository's reproduction command `R-EA.sh cifar10 3`
and NATS-Bench's `run-all.sh`):
1. Initial population: `population_size` uniform samples of the space, each queried.
2. Each cycle: draw `sample_size` members of the population uniformly WITH replacement (as
   the released code and Real et al.'s pseudo-code); the parent is the best of them by
   validation accuracy (the first drawn on ties). The child is the parent with one
   position, chosen uniformly, changed to a different op chosen uniformly (among the ops the
   space allows there). Query the child, append it to the population and remove the OLDEST
   member (aging), whatever its accuracy.
3. Stop when the clock refuses a query; the answer is the best queried architecture.
History column `parent`: the step of the child's parent (NaN for the initial population).

Over N parallel workers (`EnvConfig.workers`) it is Real et al.'s asynchronous form
(`QueryLog.run_async`): whenever a worker frees, the results finished by then join the
population (the oldest leaves once it holds `population_size`), and the worker gets a random
architecture while the population is not yet full, else a child of a tournament. With one
worker this is the loop above, draw for draw.

With `--objectives` (`EnvConfig.objectives`) it is multi-objective regularized evolution, as
Syne Tune's `MultiObjectiveRegularizedEvolution` (which scores every member against the whole
population after each result): the same settings (Syne Tune's defaults, population 100 and
sample 10, are not used), population, aging, tournament draws, mutation and asynchrony, but
a member's fitness is NSGA-II's rank and crowding distance in the current population
(`pareto.rank_and_crowding` on the normalised objectives, `QueryLog.objective_point`): its
non-dominated rank among the feasible members (moocore's `pareto_rank`; every member over a
limit ranks after them), then pymoo's crowding distance within its rank (larger is better;
infinite at a rank's extremes; Syne Tune uses an epsilon-net here instead). The parent is
the drawn member of the lowest rank, then the largest crowding, then the first drawn. Ranks
are taken over the population, as NSGA-II's tournament and Syne Tune take them, so a
member's fitness does not depend on who else is drawn; ranking the drawn members alone
measured worse on the shared NAS-Bench-201 table (cifar10, `val_acc:max,latency_s:min`,
default budget, seeds 0-9: hypervolume_val 0.5389 +- 0.0123 against 0.5458 +- 0.0141). The
answer is the front of the feasible architectures visited (`QueryLog.result`). The crowding
distance needs pymoo (the extra `mo`, checked before Ray starts: `check_evolution`).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks import Benchmark
from dsmnas.envs.spaces import SearchSpace
from dsmnas.trainables.search import SearchResult
from dsmnas.trainables.searchers.base import Progress, QueryLog, make_rng, parse_settings
from dsmnas.envs.errors import ConfigError, require_extra
from dsmnas.envs.settings import setting


@dataclass(frozen=True)
class EvolutionSettings:
    population_size: int = setting(10, "members kept alive (NAS-Bench-201's R-EA: 10)")
    sample_size: int = setting(
        3, "tournament size: members drawn (with replacement) to pick a parent (NAS-Bench-201: 3)")

    def __post_init__(self):
        for name in ("population_size", "sample_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ConfigError(f"evolution {name} must be an integer >= 1, got {v!r}")


def mutate(space: SearchSpace, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`tokens` with one uniformly chosen position set to a different allowed op."""
    mask = space.op_mask() > 0
    positions = np.flatnonzero(mask.sum(axis=1) >= 2)
    p = int(rng.choice(positions))
    others = [o for o in np.flatnonzero(mask[p]) if o != tokens[p]]
    return space.apply_edits(tokens, [(p, int(rng.choice(others)))])


def run_evolution(
    env_config: EnvConfig,
    settings: dict[str, Any],
    progress: Progress = None,
    *,
    benchmark: Benchmark | None = None,
) -> SearchResult:
    """One regularized-evolution search (settings: `EvolutionSettings`), asynchronous over
    the clock's workers (module docstring)."""
    (s,) = parse_settings("evolution", settings, EvolutionSettings)
    log = QueryLog(env_config, "evolution", s, progress, benchmark)
    rng = make_rng(env_config.seed)
    if log.benchmark.objectives is not None:
        return _run_pareto_evolution(log, s, rng)
    # Members as (step, tokens, val_acc); the deque's left end is the oldest.
    population: collections.deque = collections.deque()

    def ask():
        if len(population) < s.population_size:
            return log.benchmark.sample(rng), {"parent": math.nan}  # within the limits
        drawn = rng.integers(0, len(population), size=s.sample_size)
        parent = max((population[i] for i in drawn), key=lambda m: m[2])
        return mutate(log.space, parent[1], rng), {"parent": parent[0]}

    def tell(step, tokens, val):
        population.append((step, tokens, val))
        if len(population) > s.population_size:
            population.popleft()

    log.run_async(ask, tell)
    return log.result()


def check_evolution(env_config: EnvConfig, settings: dict[str, Any] | None = None) -> None:
    """The multi-objective form's crowding distance is pymoo's: refuse it without the extra."""
    if env_config.objectives is not None:
        require_extra("evolution with --objectives", ["pymoo"], "mo")


def _run_pareto_evolution(log: QueryLog, s: EvolutionSettings,
                          rng: np.random.Generator) -> SearchResult:
    """Multi-objective regularized evolution (module docstring): `run_evolution`'s loop with
    the parent chosen by rank and crowding distance in the population."""
    from dsmnas.trainables.searchers.pareto import rank_and_crowding

    # Members as (step, tokens, normalised objectives, within the limits); oldest first.
    population: collections.deque = collections.deque()

    def ask():
        if len(population) < s.population_size:
            return log.benchmark.sample(rng), {"parent": math.nan}  # within the limits
        drawn = rng.integers(0, len(population), size=s.sample_size)
        rank, crowding = rank_and_crowding(np.array([m[2] for m in population]),
                                           np.array([m[3] for m in population]))
        best = min(drawn, key=lambda i: (rank[i], -crowding[i]))  # min: the first on ties
        parent = population[best]
        return mutate(log.space, parent[1], rng), {"parent": parent[0]}

    def tell(step, tokens, val):
        point, feasible = log.objective_point(step)
        population.append((step, tokens, point, feasible))
        if len(population) > s.population_size:
            population.popleft()

    log.run_async(ask, tell)
    return log.result()
