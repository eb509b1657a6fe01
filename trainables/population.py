"""Population mode: S DSM-NAS searches of one configuration, in one process, as one batch.

At batch size 1 a search's controller is a few thousand tiny tensor operations, far from any
arithmetic limit; S searches side by side cost little more than one. `run_population` runs
the searches of `seeds` (same env settings and `LearnerSettings`) inside RLlib as one
REINFORCE algorithm:

- env: a vector env of S DSMNAS-v0 searches, one per seed (`envs.population`, built through
  RLlib's `gym_env_vectorize_mode="vector_entry_point"`); each keeps its own subspace graph,
  budget clock and random stream, and its observations say which search they are;
- module: `policies.population.PopulationDSMModule`, S controllers' parameters stacked,
  each row computed with its search's set, each search sampling from its own generator;
- learner: `PopulationREINFORCELearner`, one EMA baseline per search, the loss summed over
  rows so that each search's gradient is the one it would have alone; Adam, elementwise, is
  then S independent Adams. One `train_batch_size = S` batch (one step of every search) per
  update: each search still samples and updates at batch size 1, as the paper.

So every member is distributed exactly as a lone search of its seed. It is not the lone
search bit for bit: its parameters start from a `DSMController` built under its seed (not
RLlib's build order), it draws from its own generator (not torch's global one), and batched
products may round differently; README shows on 100 seeds that the results agree. A
population is reproducible for the same seeds in the same order. A member whose budget ends
goes on sampling a fresh episode (not part of its search, on no other member's behalf) until
the last member ends. Not supported: `grad_clip` (a global norm would couple the members),
`train_batch_size` > 1. Inside a Tune trial a population checkpoints every few reports
(`trainables.live`: every member's env, the module's generators, the Adam and baseline
states, the RNG states) and a restarted trial continues from its last checkpoint with every
member's history unchanged; `dsmnas search` runs no population.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict
from typing import Any, Callable, Sequence

import torch
from ray.rllib.core.columns import Columns

from dsmnas.envs import EnvConfig
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.population import MEMBER_KEY, members, population_vector_env
from dsmnas.trainables.learner import LearnerSettings
from dsmnas.trainables.live import active, env_state
from dsmnas.trainables.ray_utils import build_algo
from dsmnas.trainables.reinforce import REINFORCETorchLearner, ema_baseline_advantages
from dsmnas.trainables.search import (
    UPDATES_PER_ITERATION, SearchResult, finished_result, forget_episode_chunks, learner_entropy)

__all__ = ["PopulationREINFORCELearner", "population_config", "run_dsm_population",
           "run_population"]


class PopulationREINFORCELearner(REINFORCETorchLearner):
    """REINFORCE over a batch of rows from S searches: per-search baselines, summed loss."""

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        logp, entropy = self.logp_and_entropy(module_id, batch, fwd_out)
        baselines = self._baselines.setdefault(module_id, {})
        advantages = []
        for member, reward in zip(batch[Columns.OBS][MEMBER_KEY].long().tolist(),
                                  batch[Columns.REWARDS].tolist()):
            (advantage,), baselines[member] = ema_baseline_advantages(
                [reward], baselines.get(member), config.baseline_decay
            )
            advantages.append(advantage)
        advantages = torch.tensor(advantages, dtype=logp.dtype, device=logp.device)
        policy_loss = -(advantages * logp).sum()
        total_loss = policy_loss - config.entropy_coeff * entropy.sum()
        self.metrics.log_value((module_id, "policy_loss"), policy_loss, window=1)
        self.metrics.log_value((module_id, "entropy"), entropy.mean(), window=1)
        return total_loss


POPULATION_ENV_ID = "DSMNAS-population-v0"
"""RLlib's name of `_population_env` (registered by `population_config`)."""


def _population_env(ctx) -> Any:
    """RLlib's vector entry point: the population vector env of `ctx`."""
    settings = dict(ctx)
    seeds = settings.pop("population_seeds")
    settings.pop("num_envs", None)
    return population_vector_env(EnvConfig.from_dict(settings), seeds)


def check_population(env_config: EnvConfig, seeds: Sequence[int], learner: LearnerSettings):
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"a population needs distinct seeds, got {list(seeds)!r}")
    if learner.batch_size != 1:
        raise ConfigError(
            f"population mode runs the paper's batch size 1 per search; got batch_size "
            f"{learner.batch_size} (run such searches one by one)")


def population_config(env_config: EnvConfig, seeds: Sequence[int],
                      learner: LearnerSettings = LearnerSettings()):
    """The REINFORCE config of the population of `env_config` over `seeds`."""
    from dsmnas.policies.population import PopulationDSMModule
    from dsmnas.trainables.reinforce import reinforce_config

    from ray.tune.registry import register_env

    check_population(env_config, seeds, learner)
    seeds = [int(s) for s in seeds]
    register_env(POPULATION_ENV_ID, _population_env)
    config = reinforce_config(
        POPULATION_ENV_ID,
        env_config={**env_config.to_dict(), "population_seeds": seeds},
        model_config={"use_graph": learner.use_graph, "mask_noop_edits": learner.mask_noop_edits,
                      "message_passing": learner.message_passing,
                      "population_seeds": seeds},
        lr=learner.lr,
        entropy_coeff=learner.entropy,
        seed=seeds[0],
        module_class=PopulationDSMModule,
        baseline_decay=learner.baseline_decay,
        weight_decay=learner.weight_decay,
        train_batch_size=len(seeds),
        updates_per_iteration=UPDATES_PER_ITERATION,
    )
    return (
        config.env_runners(num_envs_per_env_runner=len(seeds),
                           gym_env_vectorize_mode="vector_entry_point")
        .training(learner_class=PopulationREINFORCELearner)
    )


def run_population(
    env_config: EnvConfig,
    seeds: Sequence[int],
    learner: LearnerSettings = LearnerSettings(),
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 5.0,
) -> list[SearchResult]:
    """The searches of `env_config` (its seed unused) with `seeds`, as one population; one
    `SearchResult` per seed, in order. `wall_time_s` is the population's in-search wall time
    divided by its size (what one search cost); `config["population"]` has the whole."""
    t0 = time.perf_counter()
    algo = build_algo(population_config(env_config, seeds, learner))
    try:
        envs = members(algo.env_runner_group.local_env_runner.env)
        budgets = [e.benchmark.clock.budget_s for e in envs]
        live, save = _live(algo, envs)
        startup_s = time.perf_counter() - t0
        start = last_print = time.perf_counter()
        # a member's first episode is its search (restored: those that had ended)
        finished: list[tuple | None] = [e.last_finished if e.episodes_finished else None
                                        for e in envs]
        while not all(finished):
            train_result = algo.train()
            forget_episode_chunks(algo)
            for i, env in enumerate(envs):
                if finished[i] is None and env.episodes_finished:
                    finished[i] = env.last_finished
            if live is not None:
                live.progress([env_state(e) for e in envs], learner_entropy(train_result),
                              save=save)
            now = time.perf_counter()
            if progress and now - last_print >= progress_every_s:
                last_print = now
                progress(f"population of {len(envs)}: {sum(map(bool, finished))} finished, "
                         f"wall {now - start:.1f} s")
        wall_s = time.perf_counter() - start
        if live is not None:
            live.last = ([env_state(e) for e in envs], learner_entropy(train_result))
    finally:
        algo.stop()
    population = {"size": len(envs), "seeds": [int(s) for s in seeds], "wall_time_s": wall_s,
                  "startup_s": startup_s}
    return [
        finished_result(env, dataclasses.replace(env_config, seed=int(seed)),
                        {"learner": asdict(learner), "population": population}, budget,
                        wall_s / len(envs), startup_s / len(envs), done)
        for env, seed, budget, done in zip(envs, seeds, budgets, finished)
    ]


def _live(algo, envs: Sequence):
    """The active Tune trial reporter (None outside a trial) and how the population saves
    its state for a checkpoint (every member's env, the algorithm with the module's
    per-member generators, the RNG states); a trial that Tune restarted from a checkpoint
    restores it here, before the first `train()`."""
    live = active()
    if live is None:
        return None, None
    from dsmnas.trainables.checkpoint import restore_checkpoint, write_state

    with live.restored() as folder:
        if folder is not None:
            restore_checkpoint(algo, list(envs), folder)

    def save(folder):
        write_state(algo, list(envs), folder, sum(len(e.history) for e in envs))

    return live, save


def run_dsm_population(env_config: EnvConfig, settings: dict[str, Any], seeds: Sequence[int],
                       progress=None) -> list[SearchResult]:
    """`run_population` with `LearnerSettings` from a dict (the methods registry's
    population signature; the space's own learner defaults as `run_dsm`)."""
    from dsmnas.envs.settings import parse_settings
    from dsmnas.trainables.search import learner_for_space

    (learner,) = parse_settings("dsm", settings, LearnerSettings)
    learner = learner_for_space(env_config.space, learner, settings)
    return run_population(env_config, seeds, learner, progress=progress)
