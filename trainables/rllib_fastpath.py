"""The RLlib plumbing that makes a REINFORCE round cheap in one process (private attributes).

What it owns: `RoundsAlgorithm`, an RLlib `Algorithm` whose `train()` is
`updates_per_iteration` rounds of one on-policy step each (sample exactly `train_batch_size`
env steps, one Learner update, weight sync), stopping after the round in which an episode
ends. `trainables.reinforce.REINFORCE` is this with the REINFORCE Learner and config (which
holds the two fields read here, `updates_per_iteration` and `share_module_in_process`);
nothing here is REINFORCE's maths, and nothing here changes a sample, an update or a weight.

Why it exists: at the paper's batch size 1 (one query, one update) each round is one small
update, and RLlib's bookkeeping around it (metrics reduction, weight sync, result compilation)
was most of a `train()` call. Where the only EnvRunner and the only Learner live in this
process (as in every search here), three shortcuts remove most of it:

- module sharing (`share_module_in_process`): the EnvRunner samples with the Learner's own
  module object, so no weights are copied after an update. Sampling and updating alternate
  in one thread, so the sampler always sees the latest weights, exactly as after a weight
  sync (tests/test_reinforce.py checks the weights are equal). At batch size 1 the module
  may also keep each sampled step's autograd graph for the update right after it
  (`policies.dsm_module.DSMNASModule.reuse_sample_graph`: one forward pass less a step);
- deferred metrics: the EnvRunner's and the Learner's metrics are reduced once per
  iteration, not once per round (RLlib's reduction is the larger part of a round's
  bookkeeping at batch size 1, and what it reduces does not change);
- the config is converted to a dict once, not deep-copied into every result by
  `Algorithm.get_auto_filled_metrics` (~1 ms per `train()`; the config is frozen once built).

Measured: with these and zero per-iteration minimums (`REINFORCEConfig`), RLlib's own overhead
fell from 16.5 to 7.4 ms per `train()` (README, "Where the time goes");
`benchmarks/reinforce_overhead.py` (2-core CPU VM, ray 2.60, torch CPU) shows ~8 ms per
`train()` with the shared module and ~2.5 ms more with weight sync, against ~1 ms for the
torch step of its small test module alone. With remote EnvRunners or Learners the rounds take
RLlib's usual path (`synchronous_parallel_sample`, metrics reduced every round,
`sync_weights`).

Private API it relies on (Ray 2.60; re-check when Ray's minor version changes):
`LearnerGroup._learner` (the local Learner), `Learner._weights_seq_no` and
`EnvRunner._weights_seq_no` (the weights version the sampler holds), `EnvRunner._device`,
`LearnerGroup.update(_no_metrics_reduce=...)`, and `Trainable.get_auto_filled_metrics`
called past `Algorithm`'s override. `trainables.workers`' `AsyncREINFORCE` builds on
`_share_module_if_possible` and the same attributes.
"""

from __future__ import annotations

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)
from ray.tune import Trainable

__all__ = ["RoundsAlgorithm"]


class RoundsAlgorithm(Algorithm):
    """One `train()` = up to `config.updates_per_iteration` rounds of (sample
    `train_batch_size` env steps, one update, weight sync), ending with the round in which an
    episode ends; no weight sync where the EnvRunner samples with the Learner's own module
    (module docstring)."""

    @override(Algorithm)
    def setup(self, config) -> None:
        super().setup(config)
        self._config_dict = None
        self._share_module_if_possible()

    @override(Algorithm)
    def training_step(self) -> None:
        # In process (local EnvRunner and Learner), the rounds' metrics are reduced once per
        # iteration, not once per round.
        local = self.env_runner_group.num_remote_workers() == 0 and self.learner_group.is_local
        sampled = 0
        for _ in range(self.config.updates_per_iteration):
            episodes = self._sample_and_update(local, sampled)
            if not episodes:
                break
            sampled += sum(len(e) for e in episodes)
            if any(e.is_done for e in episodes):
                break
        if local:
            if not any(e.is_done for e in episodes or ()):  # else read in the last round
                self.metrics.aggregate(
                    [self.env_runner_group.local_env_runner.get_metrics()],
                    key=ENV_RUNNER_RESULTS,
                )
            self.metrics.aggregate(
                [self.learner_group._learner.metrics.reduce()], key=LEARNER_RESULTS
            )

    def _sample_and_update(self, deferred: bool, sampled_before: int) -> list:
        """One round: sample train_batch_size env steps, update, sync; the episodes.
        `deferred`: leave the local runner's and Learner's metrics unreduced (the runner's
        are read before the update of a round in which an episode ends: the update's
        connectors change the episode chunks that its episode statistics are taken from)."""
        batch_size = self.config.total_train_batch_size
        runner = self.env_runner_group.local_env_runner
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            if deferred:
                episodes = runner.sample(num_timesteps=batch_size)
                runner_metrics = (
                    [runner.get_metrics()] if any(e.is_done for e in episodes) else None
                )
            else:
                episodes, runner_metrics = self._sample(batch_size)
        if not episodes:  # all remote EnvRunners failed; RLlib restores them next step
            return episodes
        key = (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)
        unread = 0 if runner_metrics else sampled_before + sum(len(e) for e in episodes)
        if runner_metrics:
            self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = self.learner_group.update(
                episodes=episodes,
                timesteps={
                    NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek(key, default=0) + unread
                },
                _no_metrics_reduce=deferred,
            )
        if not deferred:
            self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)

        if self._share_module_if_possible():
            # Same module object: only keep the sampler's weights version current.
            runner._weights_seq_no = self.learner_group._learner._weights_seq_no
            return episodes
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group, inference_only=True
            )
        return episodes

    def _sample(self, batch_size: int):
        """Exactly `batch_size` env steps (ongoing episodes are cut, not awaited)."""
        group = self.env_runner_group
        if group.num_remote_workers() == 0:
            runner = group.local_env_runner
            return runner.sample(num_timesteps=batch_size), [runner.get_metrics()]
        return synchronous_parallel_sample(
            worker_set=group,
            max_env_steps=batch_size,
            sample_timeout_s=self.config.sample_timeout_s,
            _uses_new_env_runners=True,
            _return_metrics=True,
        )

    def _share_module_if_possible(self) -> bool:
        """Makes the local EnvRunner use the local Learner's module; True if it does.

        Only when `share_module_in_process` is set, there are no remote EnvRunners or
        Learners, and both sides hold the same module class on the same device.
        Checked each step, so a module that RLlib rebuilt is shared again (or synced).
        """
        if not self.config.share_module_in_process:
            return False
        group = self.env_runner_group
        learner = self.learner_group._learner if self.learner_group.is_local else None
        if group is None or learner is None or group.num_remote_workers() > 0:
            return False
        runner = group.local_env_runner
        if runner is None or runner.module is None or DEFAULT_MODULE_ID not in learner.module:
            return False
        module = learner.module[DEFAULT_MODULE_ID]
        if runner.module is module:
            return True
        if type(runner.module) is not type(module) or str(runner._device) != str(
            learner.device
        ):
            return False
        runner.module = module
        if hasattr(module, "reuse_sample_graph") and self.config.total_train_batch_size == 1:
            # The module may keep each sampled step's graph for the update right after it
            # (policies.dsm_module.DSMNASModule): one forward pass less per step.
            module.reuse_sample_graph = True
        return True

    @override(Algorithm)
    def get_auto_filled_metrics(
        self, now=None, time_this_iter=None, timestamp=None, debug_metrics_only=False
    ) -> dict:
        # Algorithm's version deep-copies the whole config into every result (~1 ms per
        # train() call); the config is frozen once built, so convert it only once.
        filled = Trainable.get_auto_filled_metrics(
            self, now, time_this_iter, timestamp, debug_metrics_only
        )
        if "config" in filled:
            if self._config_dict is None:
                self._config_dict = self.config.to_dict()
            filled["config"] = dict(self._config_dict)
        return filled
