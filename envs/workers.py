"""One DSM-NAS search over N parallel workers as a gymnasium vector env (no RLlib here).

`SyncSearchVectorEnv(config)` has `config.workers` sub-envs that share ONE search: one
`DSMNASEnv` (one subspace graph, one budget clock with N workers, one history). A vector step
takes N actions, sampled by the policy from the same observation (the shared graph), and runs
them as one synchronous batch (`DSMNASEnv.step_batch`): N queries at once, N rewards, the
graph updated with every improvement. Every sub-env sees the same next observation. RLlib
builds it through `gym_env_vectorize_mode="vector_entry_point"` with `num_envs = workers`, so a
train batch of N env steps is one batch of the search (`trainables.workers`).

The search ends when the clock refuses a query: that step returns `terminated` for every
sub-env and the env keeps the finished search in `search.last_finished`; a step after that
starts a fresh search (gymnasium's next-step autoreset: zero rewards, the new first
observation), which is not part of the finished one.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from envs.config import EnvConfig
from envs.dsm_env import DSMNASEnv
from envs.errors import ConfigError

__all__ = ["SyncSearchVectorEnv"]


class SyncSearchVectorEnv(gym.vector.VectorEnv):
    """N sub-envs, one shared DSM-NAS search (module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, config: EnvConfig):
        if config.over_limit == "penalty":
            raise ConfigError("a synchronous search does not support over_limit='penalty'")
        self.search = DSMNASEnv(**config.to_dict())
        self.num_envs = config.workers
        self.single_observation_space = self.search.observation_space
        self.single_action_space = self.search.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._done = False

    def _batch(self, obs: dict[str, np.ndarray]):
        out = create_empty_array(self.single_observation_space, self.num_envs)
        return concatenate(self.single_observation_space, [obs] * self.num_envs, out)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        # the search's own seed (its config's) on the first reset, whatever RLlib passes
        obs, _ = self.search.reset(options=options)
        self._done = False
        return self._batch(obs), {}

    def step(self, actions):
        n = self.num_envs
        if self._done:  # next-step autoreset: a fresh search, not part of the finished one
            obs, _ = self.reset()
            return obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), {}
        rewards, ended = self.search.step_batch(list(np.asarray(actions)))
        self._done = ended
        obs = self.search.observation()[0]
        return self._batch(obs), rewards, np.full(n, ended), np.zeros(n, bool), {}
