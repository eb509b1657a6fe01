"""One DSM-NAS search over N parallel workers: a synchronous vector env and an asynchronous
env (no RLlib here).

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

`AsyncDSMNASEnv(config)` is DSMNAS-v0 where one step hands one action to the worker that
frees first (`dsm-async`): the proposal is drawn from the graph as it is at that worker's
start time, i.e. with every result finished by then and none finished later. The step's
reward is that action's own R(beta | alpha), alpha the center it was drawn from, and its
`info` carries `end_s` (when that reward is known in simulated time) and `next_start_s` (when
the next action will be drawn): the learner must not use the reward before `end_s`
(`trainables.workers.AsyncREINFORCE` holds it back until then). A finished result replaces
its subspace's center if it beats the center of that time (centers only improve). With one
worker every result is known before the next draw: it is DSMNAS-v0, step for step.

Both run DSM-NAS's multi-objective form (`--objectives`, `envs.mo_subspaces`) by the same
timing: a step's reward is judged against the centers and the known front of its draw, and a
result joins the front, and may replace its center, when it finishes (asynchronous) or when
its batch has been judged (synchronous, `DSMNASEnv.step_batch`).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from dsmnas.envs.config import EnvConfig
from dsmnas.envs.dsm_env import DSMNASEnv
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.records import QueryRecord

__all__ = ["AsyncDSMNASEnv", "SYNC_ENV_ID", "SyncSearchVectorEnv"]

SYNC_ENV_ID = "DSMNAS-sync-v0"
"""The name under which `trainables.workers.sync_config` registers `SyncSearchVectorEnv` with
RLlib (kept here, with the env, so that the search loop and the workers' configs both read it
from below them)."""


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


class AsyncDSMNASEnv(DSMNASEnv):
    """DSMNAS-v0 over N workers, one action per freed worker (module docstring)."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs):
        super().__init__(config, **kwargs)
        if self.config.over_limit == "penalty":
            raise ConfigError("an asynchronous search does not support over_limit='penalty'")
        self._running: list[tuple] = []
        """Queries not finished by the next start: (end, step, subspace, beta, val, raw
        objectives or None)."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._running = []
        return super().reset(seed=seed, options=options)

    def step(self, action):
        a = self._action(action)
        bench, clock = self.benchmark, self.benchmark.clock
        i = int(a[0])
        val_alpha = float(self.graph.val_acc[i])
        beta = self.space.apply_edits(self.graph.centers[i], a[1:].reshape(-1, 2))
        self.steps += 1
        (answer,) = bench.query_batch([beta])
        if answer is None:  # no worker can finish it within the budget: the search ends
            self._deliver(math.inf)
            self._finish()
            now = clock.next_start_s
            info = {**self._info(i, beta, queried=False), "end_s": now, "next_start_s": now}
            return self._obs(), 0.0, True, False, info
        q, (worker, start, end) = answer
        metrics = bench.query_metrics(beta)
        if self.mo is None:
            improvement = q.val_acc - val_alpha
            reward = improvement if self.config.reward == "improvement" else q.val_acc
            raw = None
        else:  # against the centers and the front of this start time
            raw = self.mo.raw(q.val_acc, metrics)
            reward = self.mo.reward(i, raw, bench.feasible(beta), self.config.reward == "absolute")
        extra = (("worker", worker), ("start_s", start)) if clock.workers > 1 else ()
        self.history.append(QueryRecord(
            step=len(self.history), subspace=i, arch=self.space.format(beta),
            val_acc=q.val_acc, reward=reward, accepted=False, cost_s=q.cost_s,
            sim_time_s=end, metrics=metrics, extra=extra,
        ))
        heapq.heappush(self._running, (end, len(self.history) - 1, i, beta, q.val_acc, raw))
        self._deliver(clock.next_start_s)
        info = {**self._info(i, beta, q.val_acc, q.cost_s, self.history[-1].accepted),
                "end_s": end, "next_start_s": clock.next_start_s}
        if self.mo is not None:
            info["objectives"] = self.mo.info(raw)
        return self._obs(), float(reward), False, False, info

    def _deliver(self, now: float) -> None:
        """Apply the results finished by `now` to the graph (and, with several objectives,
        to the known front), in the order they finished."""
        while self._running and self._running[0][0] <= now:
            _, step, i, beta, val, raw = heapq.heappop(self._running)
            feasible = self.benchmark.feasible(beta)
            if self.mo is None:
                better = val > self.graph.val_acc[i] and feasible
            else:
                better = self.mo.improves(i, raw, feasible)
                self.mo.learn(raw, feasible)
            if better and self.config.update_subspaces:
                if self.mo is not None:
                    self.mo.replace(i, raw)
                self.graph.replace(i, beta, val)
                self.history[step] = dataclasses.replace(self.history[step], accepted=True)

    def get_state(self) -> dict[str, Any]:
        if self._running:
            raise ConfigError("an asynchronous search cannot be saved with queries running")
        return super().get_state()
