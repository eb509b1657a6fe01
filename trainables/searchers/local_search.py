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

History columns: `parent`, the step of the architecture whose neighbour this is (NaN for a
random start); `accepted`, True where the search moved to this architecture (starts too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs import EnvConfig
from envs.benchmarks import Benchmark
from envs.spaces import SearchSpace
from trainables.search import SearchResult
from trainables.searchers.base import Progress, QueryLog, make_rng, parse_settings


@dataclass(frozen=True)
class LocalSettings:
    first_improvement: bool = True
    """Move to the first better neighbour (off: query all, move to the best)."""


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
    """One local search with restarts (settings: `LocalSettings`)."""
    (s,) = parse_settings("local", settings, LocalSettings)
    log = QueryLog(env_config, "local", s, progress, benchmark)
    rng = make_rng(env_config.seed)
    while True:
        current = log.benchmark.sample(rng)  # within the limits, when there are any
        val = log.query(current, parent=math.nan, accepted=True)
        if val is None:
            return log.result()
        step = len(log.rows) - 1
        while True:  # one climb from `current`
            order = neighbours(log.space, current)
            moved = None
            for i in rng.permutation(len(order)):
                v = log.query(order[i], parent=step, accepted=False)
                if v is None:
                    return log.result()
                if v > val and (moved is None or v > moved[2]):
                    moved = (len(log.rows) - 1, order[i], v)
                    if s.first_improvement:
                        break
            if moved is None:
                break  # local optimum: restart
            step, current, val = moved
            log.mark_accepted(step)
