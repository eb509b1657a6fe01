"""DSM-NAS over N parallel workers: `dsm-sync` (every step a batch of N) and `dsm-async` (a
new proposal whenever a worker frees).

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

`dsm-async` runs `AsyncREINFORCE` on `envs.workers.AsyncDSMNASEnv` (one env step = one action
for the worker that frees first, drawn from the graph of that time). Delayed rewards: the env
computes a step's reward R(beta | alpha) at once (the data is a table) but says when it is
known, `info["end_s"]`, and when the next action will be drawn, `info["next_start_s"]`. The
algorithm holds each step's episode chunk until `end_s <= next_start_s` and only then takes
one update on it (batch size 1, in the order the rewards became known). So every reward
trains exactly the action that earned it (its own obs and action, replayed under the current
weights), and the weights that draw an action have seen exactly the rewards finished by that
action's start: none from the simulated future. Actions drawn while a reward is pending come
from weights that have not seen it yet (the staleness any asynchronous search has; no
off-policy correction). With one worker every reward is released before the next draw: it is
`dsm`, draw for draw.
"""

from __future__ import annotations

import heapq
from dataclasses import asdict
from typing import Any, Callable

from dsmnas.envs import EnvConfig
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.workers import SYNC_ENV_ID
from dsmnas.trainables.learner import LearnerSettings
from dsmnas.trainables.search import SearchResult, dsm_algo_config, run_episode_search

__all__ = ["SYNC_ENV_ID", "async_config", "check_dsm_sync", "check_vector_search",
           "run_dsm_async", "run_dsm_sync", "run_sync_search", "sync_config", "vector_search"]



def _sync_env(ctx) -> Any:
    """RLlib's vector entry point: the synchronous search of `ctx`."""
    from dsmnas.envs.workers import SyncSearchVectorEnv

    settings = dict(ctx)
    num_envs = settings.pop("num_envs", None)
    config = EnvConfig.from_dict(settings)
    if num_envs is not None and num_envs != config.workers:
        raise ConfigError(f"num_envs {num_envs} is not workers {config.workers}")
    return SyncSearchVectorEnv(config)


def check_dsm_sync(env_config: EnvConfig, settings: dict[str, Any], name: str = "dsm-sync"):
    if settings.get("batch_size", 1) != 1:
        raise ConfigError(f"{name} sets its own batches (batch_size is not a setting of it, "
                          f"got {settings['batch_size']!r})")
    if env_config.over_limit == "penalty":
        raise ConfigError(f"{name} does not support over_limit='penalty'")


def check_dsm_async(env_config: EnvConfig, settings: dict[str, Any]) -> None:
    check_dsm_sync(env_config, settings, "dsm-async")


def vector_search(algo_config, env_config: EnvConfig):
    """`algo_config` (any RLlib agent's config on DSMNAS-v0 with `env_config`) on the
    synchronous vector env of `env_config.workers` sub-envs: each round the agent samples N
    actions from one graph and the N proposals run as one batch (`SyncSearchVectorEnv`).
    `trainables.search.run_episode_search` runs it as it runs DSMNAS-v0."""
    from ray.tune.registry import register_env

    register_env(SYNC_ENV_ID, _sync_env)
    return algo_config.environment(SYNC_ENV_ID).env_runners(
        num_envs_per_env_runner=env_config.workers,
        gym_env_vectorize_mode="vector_entry_point")


def check_vector_search(env_config: EnvConfig, settings: dict[str, Any] | None = None) -> None:
    """What a synchronous search over N > 1 workers cannot run (cheap: before Ray starts)."""
    if env_config.workers > 1 and env_config.over_limit == "penalty":
        raise ConfigError(f"a synchronous search over {env_config.workers} workers does not "
                          f"support over_limit='penalty'")


def sync_config(env_config: EnvConfig, learner: LearnerSettings = LearnerSettings()):
    """The REINFORCE config of one `dsm-sync` search over `env_config.workers` workers:
    `dsm`'s (`dsm_algo_config`) on the synchronous vector env, a train batch of N."""
    return vector_search(dsm_algo_config(env_config, learner), env_config).training(
        train_batch_size=env_config.workers)


def run_sync_search(env_config: EnvConfig, learner: LearnerSettings = LearnerSettings(),
                    progress: Callable[[str], None] | None = None) -> SearchResult:
    """One `dsm-sync` search to the end of its budget, in this process."""
    return run_episode_search(sync_config(env_config, learner), env_config,
                              {"learner": asdict(learner)}, progress)


def run_dsm_sync(env_config: EnvConfig, settings: dict[str, Any], progress=None) -> SearchResult:
    """`run_sync_search` with `LearnerSettings` from a dict (the methods registry's
    signature; the space's own learner defaults as `run_dsm`)."""
    from dsmnas.envs.settings import parse_settings
    from dsmnas.trainables.search import learner_for_space

    check_dsm_sync(env_config, settings)
    (learner,) = parse_settings("dsm-sync", settings, LearnerSettings)
    return run_sync_search(env_config, learner_for_space(env_config.space, learner, settings),
                           progress=progress)


def _async_algorithm():
    """`AsyncREINFORCE`, built on first use (RLlib is imported only then)."""
    from ray.rllib.utils.metrics import (
        ENV_RUNNER_RESULTS, LEARNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME,
    )

    from dsmnas.trainables.reinforce import REINFORCE

    class AsyncREINFORCE(REINFORCE):
        """REINFORCE over an asynchronous search (module docstring): one env step per
        round; each step's chunk is held until its reward is known in simulated time, then
        one update on it. In process only (the local EnvRunner samples with the Learner's
        module)."""

        def setup(self, config) -> None:
            super().setup(config)
            if not self._share_module_if_possible():
                raise ConfigError("dsm-async runs in one process: no remote EnvRunners or "
                                  "Learners")
            self._held: list[tuple] = []  # (end_s, order, episode chunk)
            self._order = self._sampled = 0

        def training_step(self) -> None:
            runner = self.env_runner_group.local_env_runner
            learner = self.learner_group._learner
            runner_metrics = None
            for _ in range(self.config.updates_per_iteration):
                episodes = runner.sample(num_timesteps=1)
                done = any(e.is_done for e in episodes)
                if done:  # read before the updates' connectors touch the chunks
                    runner_metrics = runner.get_metrics()
                now = None
                for e in episodes:
                    if len(e):
                        info = e.get_infos(-1)
                        heapq.heappush(self._held, (info["end_s"], self._order, e))
                        self._order += 1
                        self._sampled += len(e)
                        now = info["next_start_s"]
                while self._held and now is not None and self._held[0][0] <= now:
                    _, _, chunk = heapq.heappop(self._held)
                    self.learner_group.update(
                        episodes=[chunk], _no_metrics_reduce=True,
                        timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: self._sampled})
                runner._weights_seq_no = learner._weights_seq_no
                if done:
                    self._held.clear()  # rewards of a finished search train nothing more
                    break
            self.metrics.aggregate([runner_metrics or runner.get_metrics()],
                                   key=ENV_RUNNER_RESULTS)
            self.metrics.aggregate([learner.metrics.reduce()], key=LEARNER_RESULTS)

    return AsyncREINFORCE


def async_config(env_config: EnvConfig, learner: LearnerSettings = LearnerSettings()):
    """The `AsyncREINFORCE` config of one `dsm-async` search."""
    from dsmnas.envs.workers import AsyncDSMNASEnv

    config = dsm_algo_config(env_config, learner)
    config.environment(AsyncDSMNASEnv)
    config.algo_class = _async_algorithm()
    return config


def run_dsm_async(env_config: EnvConfig, settings: dict[str, Any], progress=None) -> SearchResult:
    """One `dsm-async` search (the methods registry's signature; the space's own learner
    defaults as `run_dsm`)."""
    from dsmnas.envs.settings import parse_settings
    from dsmnas.trainables.search import learner_for_space

    check_dsm_async(env_config, settings)
    (learner,) = parse_settings("dsm-async", settings, LearnerSettings)
    learner = learner_for_space(env_config.space, learner, settings)
    return run_episode_search(async_config(env_config, learner), env_config,
                              {"learner": asdict(learner)}, progress)
