"""`local`: local search with restarts, as in White et al., UAI 2021 ("Exploring the loss
landscape in neural architecture search").

Rules:
1. Start: a uniform sample of the space, queried; it is the current architecture.
2. Query the current architecture's distance-1 neighbours (every position changed to every
   other op the space allows there; canonical form, duplicates dropped) in a uniformly
   random order, and move to the FIRST one whose validation accuracy is strictly higher; its
   neighbourhood is then explored in a fresh random order.
3. Local optimum (every neighbour queried, none better): restart at step 1.
4. Stop when the clock refuses a query; the answer is the best queried architecture.
Repeats (e.g. the architecture the search just came from, which is a neighbour of the new
one) are queried and charged like any query (the paper's protocol), unless
`cache_queries` is on. With `first_improvement=False` the whole neighbourhood is queried and
the search moves to its best member if that is better (NASLib's `LocalSearch`, and the
algorithm as the paper states it).

Over N parallel workers (`EnvConfig.workers`) it runs in synchronous batches: N neighbours
(a start and N - 1 of its neighbours after a restart) are queried at once, every worker waits
for the batch's slowest query (`BudgetClock.barrier`), and the search moves to the batch's
best neighbour when it beats the current architecture (with `first_improvement`; else it
goes on until the neighbourhood is done, as above). With one worker this is the loop above,
draw for draw.

History columns: `parent`, the step of the architecture whose neighbour this is (NaN for a
random start); `accepted`, True where the search moved to this architecture (starts too).

With `--objectives` (`EnvConfig.objectives`) it is Pareto local search (PLS-1 of Paquete,
Chiarandini and Stuetzle 2004), on the normalised objectives (`QueryLog.objective_point`):
1. Start: a uniform sample of the space within the limits, queried; the archive holds it.
2. Take an archive member not yet explored, chosen uniformly at random (the start first),
   and query its distance-1 neighbours (`neighbours`) in a uniformly random order. Each
   answered neighbour within the limits that no archive member weakly dominates (dominates
   or equals: a repeat of a member never re-enters) enters the archive, and the members it
   dominates leave it. When the neighbourhood is done, the member is explored (it may have
   left the archive meanwhile; its neighbourhood is still finished).
3. Every archive member explored: restart at step 1 with a new, empty archive (as the
   single-objective form restarts; what earlier archives found stays in the history, whose
   front is the answer).
4. Stop when the clock refuses a query; the answer is the front of the feasible
   architectures visited (`QueryLog.result`).
Each neighbourhood is queried whole (PLS-1), so `first_improvement` does not apply and is
refused when given (`check_local`). Taking the oldest unexplored member instead (breadth
first) measured worse on the shared NAS-Bench-201 table (cifar10, `val_acc:max,latency_s:min`,
default budget, seeds 0-9: hypervolume_val 0.5286 +- 0.0393 against 0.5391 +- 0.0312; its
seed 7 spent the whole budget on one archive, 41 entries from one poor start: 0.4275).
Over N workers the batches are as above: N neighbours of the member being explored at once
(fewer at the end of its neighbourhood; a start takes the first worker of its batch), a
barrier, then the archive takes the batch's answers in the order they were asked.
`accepted` is True where the architecture entered the archive (starts too), even if a later
one pushed it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks import Benchmark
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import setting
from dsmnas.envs.spaces import SearchSpace
from dsmnas.trainables.search import SearchResult
from dsmnas.trainables.searchers.base import Progress, QueryLog, make_rng, parse_settings


@dataclass(frozen=True)
class LocalSettings:
    first_improvement: bool = setting(
        True, "move to the first better neighbour (off: query all, move to the best)")


def neighbours(space: SearchSpace, tokens: np.ndarray) -> list[np.ndarray]:
    """The distinct valid architectures at distance 1 from `tokens`, in position/op order."""
    mask = space.op_mask() > 0
    out, seen = [], {space.format(tokens)}
    for p in range(space.L):
        for op in np.flatnonzero(mask[p]):
            if op == tokens[p]:
                continue
            beta = space.apply_edits(tokens, [(p, int(op))])
            key = space.format(beta)
            if key not in seen:
                seen.add(key)
                out.append(beta)
    return out


def run_local(
    env_config: EnvConfig,
    settings: dict[str, Any],
    progress: Progress = None,
    *,
    benchmark: Benchmark | None = None,
) -> SearchResult:
    """One local search with restarts (settings: `LocalSettings`), in synchronous batches
    of one query per worker (module docstring)."""
    (s,) = parse_settings("local", settings, LocalSettings)
    log = QueryLog(env_config, "local", s, progress, benchmark)
    rng = make_rng(env_config.seed)
    if log.benchmark.objectives is not None:
        check_local(env_config, settings)
        return _run_pareto_local(log, rng)
    n = log.clock.workers
    while True:
        current, val, step = log.benchmark.sample(rng), None, None  # within the limits
        while True:  # one climb from `current` (queried with the first batch of a start)
            order = neighbours(log.space, current)
            todo = [order[i] for i in rng.permutation(len(order))]
            moved = None
            while todo or val is None:
                size = n
                if val is None:  # a start: it takes the first worker of the batch
                    val = log.query(current, parent=math.nan, accepted=True)
                    if val is None:
                        return log.result()
                    step, size = len(log.rows) - 1, n - 1
                batch, todo = todo[:size], todo[size:]
                batch_start = len(log.rows)
                for beta in batch:
                    if log.query(beta, parent=step, accepted=False) is None:
                        return log.result()
                log.clock.barrier()
                for i, beta in enumerate(batch):
                    v = log.rows[batch_start + i].val_acc
                    if v > val and (moved is None or v > moved[2]):
                        moved = (batch_start + i, beta, v)
                if moved is not None and s.first_improvement:
                    break
            if moved is None:
                break  # local optimum: restart
            step, current, val = moved
            log.mark_accepted(step)


def check_local(env_config: EnvConfig, settings: dict[str, Any] | None = None) -> None:
    """Pareto local search queries each neighbourhood whole: `first_improvement` has no
    meaning there."""
    if env_config.objectives is not None and "first_improvement" in (settings or {}):
        raise ConfigError("local with --objectives is Pareto local search, which queries "
                          "every neighbourhood whole: first_improvement does not apply")


@dataclass
class _Member:
    """An archive member of Pareto local search."""

    tokens: np.ndarray
    step: int = -1
    """Its query's step (-1: a start not yet queried)."""
    point: np.ndarray | None = None
    """Its normalised objectives (minimised)."""
    explored: bool = False


def _run_pareto_local(log: QueryLog, rng: np.random.Generator) -> SearchResult:
    """Pareto local search with restarts (module docstring), in synchronous batches of one
    query per worker."""
    from dsmnas.trainables.searchers.pareto import covers, dominates

    n = log.clock.workers
    while True:  # one Pareto local search from a uniform sample, with an archive of its own
        archive: list[_Member] = []
        member = _Member(log.benchmark.sample(rng))  # within the limits
        while member is not None:
            order = neighbours(log.space, member.tokens)
            todo = [order[i] for i in rng.permutation(len(order))]
            while todo or not archive:
                size = n
                if not archive:  # a start: it takes the first worker of the batch
                    if log.query(member.tokens, parent=math.nan, accepted=True) is None:
                        return log.result()
                    member.step = len(log.rows) - 1
                    member.point, _ = log.objective_point(member.step)
                    archive.append(member)
                    size = n - 1
                batch, todo = todo[:size], todo[size:]
                batch_start = len(log.rows)
                for beta in batch:
                    if log.query(beta, parent=member.step, accepted=False) is None:
                        return log.result()
                log.clock.barrier()
                for i, beta in enumerate(batch):
                    step = batch_start + i
                    point, feasible = log.objective_point(step)
                    if feasible and not any(covers(m.point, point) for m in archive):
                        archive = [m for m in archive if not dominates(point, m.point)]
                        archive.append(_Member(beta, step, point))
                        log.mark_accepted(step)
            member.explored = True
            unexplored = [m for m in archive if not m.explored]
            member = unexplored[int(rng.integers(len(unexplored)))] if unexplored else None
