"""A population of DSMNAS-v0 searches as one gymnasium vector env (no RLlib here).

`population_vector_env(config, seeds)` is a `SyncVectorEnv` of one `DSMNASEnv` per seed, each
wrapped in `PopulationMember`, which adds the observation key `member` (the search's index,
so that a population module computes the row with that search's parameters) and resets the
search with its own seed the first time, whatever seed the vector env is reset with. Every
member is the lone search of its seed: same config, same initial centers, own budget clock.

A member's episodes end inside it: on the step that ends its search it starts a new episode
itself and returns that episode's first observation with `terminated` False, so the vector
env never resets a member. Why: RLlib's env runner does not count the step in which a
vector env resets a sub-env (gymnasium's next-step autoreset) and takes one more vector step
to fill its batch, so each time one member's search ended, every other member would take two
steps before the next update (one update on two queries, not the paper's batch size 1). The
steps after a member's search are not part of it (`DSMNASEnv.last_finished` holds the
finished one) and go on, at one per round, until the last member ends.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dsmnas.envs.config import EnvConfig
from dsmnas.envs.dsm_env import DSMNASEnv

__all__ = ["MEMBER_KEY", "PopulationMember", "population_vector_env"]

MEMBER_KEY = "member"


class PopulationMember(gym.Wrapper):
    """One search of a population: its obs carry `member`; its first reset uses `seed`."""

    def __init__(self, env: DSMNASEnv, member: int, size: int, seed: int) -> None:
        super().__init__(env)
        self.member, self.seed = member, seed
        self.observation_space = spaces.Dict({
            **env.observation_space.spaces,
            MEMBER_KEY: spaces.Box(0, size - 1, (), np.int64),
        })
        self._first = True

    def _with_member(self, obs: dict) -> dict:
        return {**obs, MEMBER_KEY: np.int64(self.member)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed, self._first = (self.seed if self._first else None), False
        obs, info = self.env.reset(seed=seed, options=options)
        return self._with_member(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:  # the search ended: go on with a fresh episode
            obs, _ = self.env.reset()
        return self._with_member(obs), reward, False, False, info


def _member(config: dict[str, Any], seeds: Sequence[int], i: int) -> PopulationMember:
    env = DSMNASEnv(**{**config, "seed": int(seeds[i])})
    return PopulationMember(env, i, len(seeds), int(seeds[i]))


def population_vector_env(config: EnvConfig, seeds: Sequence[int]) -> gym.vector.SyncVectorEnv:
    """The searches of `config` with `seeds`, member i = seed i, stepped together."""
    settings = config.to_dict()
    return gym.vector.SyncVectorEnv(
        [functools.partial(_member, settings, list(seeds), i) for i in range(len(seeds))]
    )


def members(vector_env) -> list[DSMNASEnv]:
    """The `DSMNASEnv` of each member of a (possibly wrapped) population vector env."""
    return [e.unwrapped for e in vector_env.unwrapped.envs]
