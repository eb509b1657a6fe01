"""DSM-NAS over N parallel workers: `dsm-sync`, one search whose every step is a batch of N.

`dsm-sync` with `EnvConfig.workers = N` runs DSM-NAS's REINFORCE inside RLlib on
`envs.workers.SyncSearchVectorEnv` (built through `gym_env_vectorize_mode=
"vector_entry_point"`, `num_envs_per_env_runner = N`): each round the controller samples N
actions from the same subspace graph (N subspace choices and edit lists, independent draws of
one policy), the env queries the N proposals at once on the N workers and updates the graph
with every improvement (`DSMNASEnv.step_batch`: on one center the best improving proposal
wins), and the learner takes one update on the N samples (`train_batch_size = N`: the mean of
their REINFORCE terms; the EMA baseline steps through the N rewards in worker order, as it
steps through consecutive rewards at batch size 1). So a search makes N times fewer updates
than `dsm` for the same number of queries. With N = 1 it is `dsm`, draw for draw (the same
history; tests/test_workers.py checks it).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Callable

from envs import EnvConfig
from envs.errors import ConfigError
from trainables.learner import LearnerSettings
from trainables.ray_utils import build_algo
from trainables.search import UPDATES_PER_ITERATION, SearchResult, finished_result

__all__ = ["SYNC_ENV_ID", "check_dsm_sync", "run_dsm_sync", "sync_config"]

SYNC_ENV_ID = "DSMNAS-sync-v0"
"""RLlib's name of `_sync_env` (registered by `sync_config`)."""


def _sync_env(ctx) -> Any:
    """RLlib's vector entry point: the synchronous search of `ctx`."""
    from envs.workers import SyncSearchVectorEnv

    settings = dict(ctx)
    num_envs = settings.pop("num_envs", None)
    config = EnvConfig.from_dict(settings)
    if num_envs is not None and num_envs != config.workers:
        raise ConfigError(f"num_envs {num_envs} is not workers {config.workers}")
    return SyncSearchVectorEnv(config)


def check_dsm_sync(env_config: EnvConfig, settings: dict[str, Any]) -> None:
    if settings.get("batch_size", 1) != 1:
        raise ConfigError("dsm-sync takes one update per batch of N = workers queries; "
                          f"batch_size is not a setting of it (got {settings['batch_size']!r})")
    if env_config.over_limit == "penalty":
        raise ConfigError("dsm-sync does not support over_limit='penalty'")


def sync_config(env_config: EnvConfig, learner: LearnerSettings = LearnerSettings()):
    """The REINFORCE config of one `dsm-sync` search over `env_config.workers` workers."""
    from ray.tune.registry import register_env

    from trainables.reinforce import reinforce_config

    register_env(SYNC_ENV_ID, _sync_env)
    n = env_config.workers
    config = reinforce_config(
        SYNC_ENV_ID,
        env_config=env_config.to_dict(),
        model_config={"use_graph": learner.use_graph, "mask_noop_edits": learner.mask_noop_edits,
                      "message_passing": learner.message_passing},
        lr=learner.lr,
        entropy_coeff=learner.entropy,
        seed=env_config.seed,
        baseline_decay=learner.baseline_decay,
        weight_decay=learner.weight_decay,
        train_batch_size=n,
        updates_per_iteration=UPDATES_PER_ITERATION,
    )
    return config.env_runners(num_envs_per_env_runner=n,
                              gym_env_vectorize_mode="vector_entry_point")


def run_sync_search(env_config: EnvConfig, learner: LearnerSettings = LearnerSettings(),
                    progress: Callable[[str], None] | None = None,
                    progress_every_s: float = 2.0) -> SearchResult:
    """One `dsm-sync` search to the end of its budget, in this process."""
    from envs.benchmarks.base import progress_text

    t0 = time.perf_counter()
    algo = build_algo(sync_config(env_config, learner))
    try:
        vector = algo.env_runner_group.local_env_runner.env.unwrapped
        env = vector.search
        budget = env.benchmark.clock.budget_s
        startup_s = time.perf_counter() - t0
        start = last_print = time.perf_counter()
        while env.episodes_finished == 0:
            algo.train()
            now = time.perf_counter()
            if progress and now - last_print >= progress_every_s:
                last_print = now
                progress(f"{progress_text(env.benchmark.clock.state())}  wall "
                         f"{now - start:.1f} s")
        wall_s = time.perf_counter() - start
    finally:
        algo.stop()
    return finished_result(env, env_config, {"learner": asdict(learner)}, budget, wall_s,
                           startup_s)


def run_dsm_sync(env_config: EnvConfig, settings: dict[str, Any], progress=None) -> SearchResult:
    """`run_sync_search` with `LearnerSettings` from a dict (the methods registry's
    signature; the space's own learner defaults as `run_dsm`)."""
    from envs.settings import parse_settings
    from trainables.search import learner_for_space

    check_dsm_sync(env_config, settings)
    (learner,) = parse_settings("dsm-sync", settings, LearnerSettings)
    return run_sync_search(env_config, learner_for_space(env_config.space, learner, settings),
                           progress=progress)
