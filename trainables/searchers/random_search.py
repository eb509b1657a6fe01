"""`random`: random search over the whole space (the paper's Table II and Fig. 7 baseline).

Rule: query uniform samples of the space (`SearchSpace.sample`, independent, repeats
possible and charged unless `cache_queries`; in a space with a MACs limit, only samples
within it, as OFA's own random sampler) until the clock refuses one; the answer is the best
queried architecture by validation accuracy. No settings. Over N parallel workers
(`EnvConfig.workers`) each sample goes to the earliest free worker: no result is needed to
propose the next one, so random search is asynchronous as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks import Benchmark
from dsmnas.trainables.search import SearchResult
from dsmnas.trainables.searchers.base import Progress, QueryLog, make_rng, parse_settings


@dataclass(frozen=True)
class RandomSettings:
    """Random search has no settings."""


def run_random(
    env_config: EnvConfig,
    settings: dict[str, Any],
    progress: Progress = None,
    *,
    benchmark: Benchmark | None = None,
) -> SearchResult:
    """One random search on the benchmark `env_config` describes (or `benchmark`)."""
    (s,) = parse_settings("random", settings, RandomSettings)
    log = QueryLog(env_config, "random", s, progress, benchmark)
    rng = make_rng(env_config.seed)
    while log.query(log.benchmark.sample(rng)) is not None:
        pass
    return log.result()
