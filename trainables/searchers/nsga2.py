"""`nsga2`: NSGA-II (Deb et al. 2002), pymoo 0.6.2's `NSGA2`, driven through our budget clock.

Multi-objective only: it needs `--objectives` and refuses without it (`check_nsga2`), as it
refuses a space that is not dense (its genes would make architectures the space does not
list) and a missing pymoo (the extra `mo`).

Rules:
1. Genome: one gene per position where the space allows at least 2 ops; gene value i is the
   i-th op the space allows there (`space.op_mask()`); positions with one allowed op keep it.
   A genome's architecture is its ops in canonical form (`space.validate`).
2. Initial population: `population_size` uniform samples of the space within the limits
   (`Benchmark.sample`, as random search and evolution start), drawn from `make_rng(seed)`.
3. Each generation pymoo's NSGA-II asks for `population_size` children: binary tournaments
   (domination, then crowding distance), pymoo's uniform crossover (`UX`, each pair of parents
   recombined with probability `crossover_prob`, pymoo's default 0.9) and a random-reset
   mutation (each gene, with probability min(1, `mutation_genes` / genes), set to a different
   allowed op, uniformly: the ops are categories, so pymoo's SBX and polynomial mutation,
   which assume ordered integers, are not used), duplicates of the population and of each
   other removed (pymoo's default). Every child asked is a charged query (one history row,
   a repeat of an earlier generation's architecture too, as evolution's children). Its
   normalised objectives (`QueryLog.objective_point`) are told back, with the limits as one
   inequality constraint, the overshoot `max(metric / limit) - 1` (`Benchmark.overshoot`),
   which pymoo's constraint handling uses (a feasible member beats an infeasible one; two
   infeasible ones compare by overshoot). Survival: pymoo's rank and crowding.
4. Stop when the clock refuses a query (a generation cut short is not told), or when pymoo can
   make no new child (duplicate elimination exhausted, a tiny space); the answer is the front
   of the feasible architectures visited (`QueryLog.result`).
pymoo's random state is `make_rng(seed, 1)`, so the same seed gives the same history.

Over N parallel workers (`EnvConfig.workers`) a generation is a synchronous batch: its
children run at once on the earliest free workers, and all wait for the slowest
(`BudgetClock.barrier`) before the generation is told, so no child is proposed knowing a
result from its own generation. With one worker this is the sequential loop.

History column `generation`: 0 for the initial population, then 1, 2, ...

Population size 20 is our choice, not a paper's: the default NAS-Bench-201 budgets buy about
215 queries, so 20 gives about 10 generations (pymoo's default of 100 would spend half the
budget on the initial population).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks import Benchmark
from dsmnas.envs.errors import ConfigError, require_extra
from dsmnas.envs.settings import setting
from dsmnas.trainables.search import SearchResult
from dsmnas.trainables.searchers.base import Progress, QueryLog, make_rng, parse_settings


@dataclass(frozen=True)
class NSGA2Settings:
    population_size: int = setting(
        20, "members kept, and children asked per generation (about 10 generations in "
            "NAS-Bench-201's default budget)")
    crossover_prob: float = setting(
        0.9, "probability that a pair of parents is recombined by uniform crossover (pymoo's "
             "default)")
    mutation_genes: float = setting(
        1.0, "expected genes a child's mutation resets: each gene with probability "
             "min(1, mutation_genes / genes) (1: pymoo's default rate 1 / genes)")

    def __post_init__(self):
        if not (isinstance(self.population_size, int) and self.population_size >= 2):
            raise ConfigError(f"nsga2 population_size must be an integer >= 2, got "
                              f"{self.population_size!r}")
        if not 0.0 <= self.crossover_prob <= 1.0:
            raise ConfigError(f"nsga2 crossover_prob must be in [0, 1], got "
                              f"{self.crossover_prob!r}")
        if not self.mutation_genes > 0.0:
            raise ConfigError(f"nsga2 mutation_genes must be > 0, got {self.mutation_genes!r}")


def check_nsga2(env_config: EnvConfig, settings: dict[str, Any] | None = None) -> None:
    """NSGA-II searches several objectives, over the genes of a dense space, with pymoo."""
    from dsmnas.envs.registry import get_space

    if env_config.objectives is None:
        raise ConfigError("nsga2 searches several objectives: pass --objectives (e.g. "
                          "--objectives val_acc:max,latency_s:min)")
    if not get_space(env_config.space).dense:
        raise ConfigError(f"nsga2 recombines positions freely, which gives architectures "
                          f"{env_config.spec.name} does not list (a space that is not dense)")
    require_extra("nsga2", ["pymoo"], "mo")


class Genome:
    """Genes <-> architectures of a space (module docstring, rule 1)."""

    def __init__(self, space):
        self.space = space
        mask = space.op_mask() > 0
        self.allowed = [np.flatnonzero(mask[p]) for p in range(space.L)]
        self.positions = [p for p, ops in enumerate(self.allowed) if len(ops) >= 2]
        self.sizes = np.array([len(self.allowed[p]) for p in self.positions])
        self._fixed = np.array([ops[0] for ops in self.allowed])

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        return np.array([int(np.flatnonzero(self.allowed[p] == tokens[p])[0])
                         for p in self.positions])

    def decode(self, genes: np.ndarray) -> np.ndarray:
        tokens = self._fixed.copy()
        for p, g in zip(self.positions, np.asarray(genes).astype(int)):
            tokens[p] = self.allowed[p][g]
        return self.space.validate(tokens)


def _reset_mutation(sizes: np.ndarray, rate: float):
    """pymoo `Mutation`: each gene, with probability `rate`, set to a different value of its
    `sizes[j]` uniformly."""
    from pymoo.core.mutation import Mutation

    class ResetMutation(Mutation):
        def _do(self, problem, X, random_state=None, **kwargs):
            X = np.asarray(X).astype(int)
            hit = random_state.random(X.shape) < rate
            shift = random_state.integers(1, sizes, size=X.shape)  # 1 .. size - 1
            return np.where(hit, (X + shift) % sizes, X)

    return ResetMutation()


def run_nsga2(
    env_config: EnvConfig,
    settings: dict[str, Any],
    progress: Progress = None,
    *,
    benchmark: Benchmark | None = None,
) -> SearchResult:
    """One NSGA-II search (settings: `NSGA2Settings`), one synchronous batch per generation
    over the clock's workers (module docstring)."""
    (s,) = parse_settings("nsga2", settings, NSGA2Settings)
    check_nsga2(env_config)
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.problem import Problem
    from pymoo.core.termination import NoTermination
    from pymoo.operators.crossover.ux import UX
    from pymoo.problems.static import StaticProblem

    log = QueryLog(env_config, "nsga2", s, progress, benchmark)
    genome = Genome(log.space)
    rng = make_rng(env_config.seed)
    limited = bool(log.benchmark.limits)
    problem = Problem(n_var=len(genome.positions), n_obj=len(log.benchmark.objectives.names),
                      n_ieq_constr=int(limited), xl=np.zeros(len(genome.sizes)),
                      xu=genome.sizes - 1.0, vtype=int)
    start = np.array([genome.encode(log.benchmark.sample(rng))
                      for _ in range(s.population_size)])
    rate = min(1.0, s.mutation_genes / len(genome.positions))
    algorithm = NSGA2(pop_size=s.population_size, sampling=start,
                      crossover=UX(prob=s.crossover_prob),
                      mutation=_reset_mutation(genome.sizes, rate), eliminate_duplicates=True)
    algorithm.setup(problem, termination=NoTermination(), seed=make_rng(env_config.seed, 1),
                    verbose=False)
    generation = 0
    while True:
        asked = algorithm.ask()
        if asked is None or len(asked) == 0:
            return log.result()  # no new child can be made
        points, overshoot = [], []
        for genes in asked.get("X"):
            tokens = genome.decode(genes)
            if log.query(tokens, generation=generation) is None:
                return log.result()
            points.append(log.objective_point(len(log.rows) - 1)[0])
            overshoot.append([log.benchmark.overshoot(tokens)])
        log.clock.barrier()
        answers = {"F": np.array(points)}
        if limited:
            answers["G"] = np.array(overshoot)
        Evaluator().eval(StaticProblem(problem, **answers), asked)
        algorithm.tell(infills=asked)
        generation += 1
