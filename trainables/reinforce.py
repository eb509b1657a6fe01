"""REINFORCE with an EMA reward baseline, as a small RLlib (new API stack) algorithm.

DSM-NAS trains its controller with REINFORCE (spec, "One search step", step 5):

    loss = -(R - b) * log pi(a|s) - entropy_coeff * H(pi(.|s))

where R is the immediate reward of one env step (one architecture query; never a
discounted return), log pi and H are summed over all decisions of the step (the module's
`TorchMultiCategorical` does that), and b is an exponential moving average of R.

Baseline rule (checked against the official code, `MovingAverageMetric(gamma=0.9)` in
chenyaofo/DSM-NAS `codebase/torchutils/metrics.py` and its use in `entry/train201.py`):
for each reward R, in the order the steps were taken,

    b <- R                                  for the very first reward,
    b <- decay * b + (1 - decay) * R        afterwards,
    advantage = R - b                       (b already includes R).

So the first step's advantage is exactly 0 (only the entropy term acts), and there is no
bias correction (unlike AutoDL's `ExponentialMovingAverage`). With `train_batch_size > 1`
the rule is applied step by step in batch order, which reduces to the official code at
batch size 1. The baseline is Learner state and travels with checkpoints.

This module owns: `REINFORCEConfig`, `REINFORCE`, `REINFORCETorchLearner`,
`ema_baseline_advantages` (the rule above, pure) and `reinforce_config` (lean defaults
for the CLI). It brings no RLModule: pass one with `.rl_module(rl_module_spec=...)`;
its train pass must return `Columns.ACTION_DIST_INPUTS` for its train action dist class.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from typing_extensions import Self

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
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
from ray.rllib.utils.typing import ModuleID, StateDict, TensorType
from ray.tune import Trainable
from dsmnas.envs.errors import ConfigError
from dsmnas.trainables.learner import LearnerSettings

__all__ = [
    "REINFORCE",
    "REINFORCEConfig",
    "REINFORCETorchLearner",
    "ema_baseline_advantages",
    "reinforce_config",
]

# Key of the per-module baselines inside the Learner's state dict (and checkpoints).
BASELINE_STATE_KEY = "reinforce_baselines"


def ema_baseline_advantages(
    rewards: Sequence[float], baseline: Optional[float], decay: float
) -> Tuple[List[float], float]:
    """Applies the DSM-NAS baseline rule to `rewards`, in order.

    Args:
        rewards: immediate rewards, oldest first.
        baseline: the baseline before these rewards; None if no reward was seen yet.
        decay: weight of the old baseline (0.9 in DSM-NAS).

    Returns:
        (advantages, new_baseline) with advantages[i] = rewards[i] - b_i, where b_i is
        the baseline after it was updated with rewards[i].
    """
    advantages = []
    b = baseline
    for r in rewards:
        r = float(r)
        b = r if b is None else decay * b + (1.0 - decay) * r
        advantages.append(r - b)
    if b is None:
        raise ConfigError("ema_baseline_advantages needs at least one reward or a baseline")
    return advantages, b


class REINFORCEConfig(AlgorithmConfig):
    """Settings of `REINFORCE`; defaults are `trainables.learner.LearnerSettings`' (the
    paper's NAS-Bench-201 ones).

    REINFORCE-specific fields (set them with `.training(...)`):
        baseline_decay: weight of the old baseline in the reward EMA (official code: 0.9).
        entropy_coeff: weight of the entropy bonus (`LearnerSettings.entropy`).
        weight_decay: Adam weight decay (the official NB201 code uses 2.37e-5).
        updates_per_iteration: sample-then-update rounds per `train()` call (1). Each round
            is the same (train_batch_size env steps, one update, weight sync); more rounds
            per call only spare RLlib's per-iteration metrics reduction and result
            compilation. An iteration stops after the round in which an episode ends, so
            no step is sampled past a finished episode on its behalf.
        share_module_in_process: when the only Learner and the only EnvRunner live in
            the driver process on the same device, let the EnvRunner sample with the
            Learner's module object instead of a copy, so no weights are copied after
            each update (True). Sampling and updating alternate in one thread, so the
            sampler always sees the latest weights, exactly as after a weight sync.
    Inherited fields with REINFORCE defaults:
        lr: Adam learning rate.
        train_batch_size: env steps (architecture queries) per update (the paper: 1).
        grad_clip / grad_clip_by: optional gradient clipping (off).
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or REINFORCE)
        self.lr = LearnerSettings.lr
        self.train_batch_size = LearnerSettings.batch_size
        self.baseline_decay = LearnerSettings.baseline_decay
        self.entropy_coeff = LearnerSettings.entropy
        self.weight_decay = LearnerSettings.weight_decay
        self.share_module_in_process = True
        self.updates_per_iteration = 1
        # One DSM-NAS episode is a whole search (~200 steps): never wait for its end;
        # "auto" makes the fragments of all env runners add up to the train batch.
        self.batch_mode = "truncate_episodes"
        self.rollout_fragment_length = "auto"
        # One `train()` = one `training_step()`; no time/step minimum per iteration.
        self.min_time_s_per_iteration = 0
        self.min_sample_timesteps_per_iteration = 0
        self.min_train_timesteps_per_iteration = 0

    @override(AlgorithmConfig)
    def training(
        self,
        *,
        baseline_decay: Optional[float] = NotProvided,
        entropy_coeff: Optional[float] = NotProvided,
        weight_decay: Optional[float] = NotProvided,
        share_module_in_process: Optional[bool] = NotProvided,
        updates_per_iteration: Optional[int] = NotProvided,
        **kwargs,
    ) -> Self:
        """Sets the REINFORCE fields (see the class docstring) and any inherited
        training setting (`lr`, `train_batch_size`, `grad_clip`, `learner_class`, ...)."""
        super().training(**kwargs)
        if baseline_decay is not NotProvided:
            self.baseline_decay = baseline_decay
        if entropy_coeff is not NotProvided:
            self.entropy_coeff = entropy_coeff
        if weight_decay is not NotProvided:
            self.weight_decay = weight_decay
        if share_module_in_process is not NotProvided:
            self.share_module_in_process = share_module_in_process
        if updates_per_iteration is not NotProvided:
            self.updates_per_iteration = updates_per_iteration
        return self

    @override(AlgorithmConfig)
    def get_default_learner_class(self):
        if self.framework_str != "torch":
            raise ConfigError(
                f"REINFORCE supports framework 'torch' only, got {self.framework_str!r}"
            )
        return REINFORCETorchLearner

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        # No default model: the user's spec (validated below) is merged into this.
        return RLModuleSpec()

    @override(AlgorithmConfig)
    def validate(self) -> None:
        super().validate()
        if not self.enable_rl_module_and_learner:
            raise ConfigError("REINFORCE runs on RLlib's new API stack only")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ConfigError(f"baseline_decay must be in [0, 1), got {self.baseline_decay!r}")
        if self.entropy_coeff < 0.0:
            raise ConfigError(f"entropy_coeff must be >= 0, got {self.entropy_coeff!r}")
        if not (isinstance(self.updates_per_iteration, int) and self.updates_per_iteration >= 1):
            raise ConfigError(
                f"updates_per_iteration must be an int >= 1, got {self.updates_per_iteration!r}"
            )
        if self.weight_decay < 0.0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if isinstance(self.lr, (int, float)) and self.lr <= 0.0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if (self.num_learners or 0) > 1:
            # Each Learner would keep its own baseline over its own shard of the batch.
            raise ConfigError(
                f"REINFORCE keeps one reward baseline; num_learners must be 0 or 1, "
                f"got {self.num_learners!r}"
            )
        batch = self.total_train_batch_size
        if not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"train_batch_size must be an int >= 1, got {batch!r}")
        # RLlib derives an evaluation config (complete episodes, its own runners) from
        # this one and validates it too; the sampling rules below are for training.
        if not self.in_evaluation:
            envs = self.num_envs_per_env_runner * max(self.num_env_runners or 0, 1)
            if batch % envs:
                raise ConfigError(
                    f"train_batch_size ({batch}) must be a multiple of "
                    f"num_envs_per_env_runner x num_env_runners ({envs}) so that each "
                    f"update sees exactly train_batch_size env steps"
                )
            if self.batch_mode != "truncate_episodes":
                raise ConfigError(
                    f"REINFORCE samples fixed-size fragments; batch_mode must be "
                    f"'truncate_episodes', got {self.batch_mode!r}"
                )
        if self.num_epochs != 1 or self.minibatch_size not in (None, batch):
            # The baseline must see each reward exactly once.
            raise ConfigError(
                f"REINFORCE does one update per batch: num_epochs must be 1 and "
                f"minibatch_size None, got {self.num_epochs!r} and {self.minibatch_size!r}"
            )
        spec = self._rl_module_spec
        if spec is None or getattr(spec, "module_class", None) is None:
            raise ConfigError(
                "REINFORCE has no default RLModule: set "
                "config.rl_module(rl_module_spec=RLModuleSpec(module_class=...))"
            )


class REINFORCETorchLearner(TorchLearner):
    """REINFORCE loss with the EMA baseline; Adam (with optional weight decay)."""

    @override(TorchLearner)
    def build(self) -> None:
        super().build()
        # One baseline per module; None until the module has seen its first reward.
        self._baselines: Dict[ModuleID, Optional[float]] = {}

    @override(TorchLearner)
    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        # TorchLearner's default is plain Adam; the official code adds weight decay.
        params = self.get_parameters(self._module[module_id])
        self.register_optimizer(
            module_id=module_id,
            optimizer=torch.optim.Adam(params, weight_decay=config.weight_decay, foreach=True),
            params=params,
            lr_or_lr_schedule=config.lr,
        )

    def logp_and_entropy(self, module_id: ModuleID, batch: Dict[str, Any],
                         fwd_out: Dict[str, TensorType]) -> Tuple[TensorType, TensorType]:
        """Per row: the log-probability of the batch's actions (summed over the action's
        decisions) and the entropy of the train distribution of `fwd_out`."""
        module = self.module[module_id].unwrapped()
        dist = module.get_train_action_dist_cls().from_logits(
            fwd_out[Columns.ACTION_DIST_INPUTS]
        )
        return dist.logp(batch[Columns.ACTIONS]), dist.entropy()

    @override(TorchLearner)
    def compute_loss_for_module(
        self,
        *,
        module_id: ModuleID,
        config: REINFORCEConfig,
        batch: Dict[str, Any],
        fwd_out: Dict[str, TensorType],
    ) -> TensorType:
        if Columns.LOSS_MASK in batch:
            # Time-ranked, zero-padded batches come from stateful modules only.
            raise ConfigError(
                f"REINFORCE supports non-recurrent RLModules only; module {module_id!r} "
                f"is stateful"
            )
        logp, entropy = self.logp_and_entropy(module_id, batch, fwd_out)

        rewards = batch[Columns.REWARDS].tolist()
        advantages, baseline = ema_baseline_advantages(
            rewards,
            self._baselines.get(module_id),
            config.baseline_decay,
        )
        self._baselines[module_id] = baseline
        advantages = torch.tensor(advantages, dtype=logp.dtype, device=logp.device)

        policy_loss = -(advantages * logp).mean()
        mean_entropy = entropy.mean()
        total_loss = policy_loss - config.entropy_coeff * mean_entropy

        for key, value in (
            ("reward_mean", sum(rewards) / len(rewards)),
            ("baseline", baseline),
            ("advantage_mean", advantages.mean()),
            ("policy_loss", policy_loss),
            ("entropy", mean_entropy),
        ):
            self.metrics.log_value((module_id, key), value, window=1)
        return total_loss

    def get_baseline(self, module_id: ModuleID = DEFAULT_MODULE_ID) -> Optional[float]:
        """The current reward baseline of `module_id` (None before its first reward)."""
        return self._baselines.get(module_id)

    @override(TorchLearner)
    def get_state(self, components=None, *, not_components=None, **kwargs) -> StateDict:
        state = super().get_state(components, not_components=not_components, **kwargs)
        state[BASELINE_STATE_KEY] = dict(self._baselines)
        return state

    @override(TorchLearner)
    def set_state(self, state: StateDict) -> None:
        super().set_state(state)
        if BASELINE_STATE_KEY in state:
            self._baselines = dict(state[BASELINE_STATE_KEY])


class REINFORCE(Algorithm):
    """One `train()` = sample `train_batch_size` env steps, one update, weight sync
    (no sync where the EnvRunner samples with the Learner's own module)."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> REINFORCEConfig:
        return REINFORCEConfig()

    @override(Algorithm)
    def setup(self, config) -> None:
        super().setup(config)
        self._config_dict = None
        self._share_module_if_possible()

    @override(Algorithm)
    def training_step(self) -> None:
        # In process (local EnvRunner and Learner), the rounds' metrics are reduced once per
        # iteration, not once per round: RLlib's reduction is the larger part of a round's
        # bookkeeping at batch size 1, and what it reduces does not change.
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

    def get_baseline(self, module_id: ModuleID = DEFAULT_MODULE_ID) -> Optional[float]:
        """The reward baseline of `module_id` held by the (first) Learner."""
        results = self.learner_group.foreach_learner(
            lambda learner: learner.get_baseline(module_id)
        )
        return next(iter(results)).get()


def reinforce_config(
    env: Any,
    env_config: Optional[Dict[str, Any]] = None,
    model_config: Optional[Dict[str, Any]] = None,
    lr: float = LearnerSettings.lr,
    entropy_coeff: float = LearnerSettings.entropy,
    seed: Optional[int] = None,
    *,
    module_class: Optional[type] = None,
    baseline_decay: float = LearnerSettings.baseline_decay,
    weight_decay: float = LearnerSettings.weight_decay,
    train_batch_size: int = LearnerSettings.batch_size,
    grad_clip: Optional[float] = None,
    num_env_runners: int = 0,
    updates_per_iteration: int = 1,
) -> REINFORCEConfig:
    """A `REINFORCEConfig` with the lean defaults used by the CLI and the tests.

    One in-process env runner (no actors, no remote calls), one env per runner, torch,
    seeding via `.debugging(seed=...)`, and the REINFORCE settings given here.
    `module_class` defaults to the DSM-NAS controller `policies.dsm_module.DSMNASModule`.
    """
    if module_class is None:
        from dsmnas.policies.dsm_module import DSMNASModule as module_class
    return (
        REINFORCEConfig()
        .framework("torch")
        .environment(
            env,
            env_config=env_config or {},
            # Discrete actions need no unsquashing; skipping it saves ~0.5 ms a step.
            normalize_actions=False,
        )
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=1)
        .learners(num_learners=0)
        .rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=module_class, model_config=model_config or {}
            )
        )
        .training(
            lr=lr,
            entropy_coeff=entropy_coeff,
            baseline_decay=baseline_decay,
            weight_decay=weight_decay,
            train_batch_size=train_batch_size,
            grad_clip=grad_clip,
            updates_per_iteration=updates_per_iteration,
        )
        .debugging(seed=seed)
    )
