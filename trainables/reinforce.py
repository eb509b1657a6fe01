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

This module owns the algorithm: `ema_baseline_advantages` (the rule above, pure),
`REINFORCETorchLearner` (the loss above, Adam with weight decay, the baseline as Learner
state), `REINFORCEConfig` (its settings and checks), `REINFORCE` (the RLlib `Algorithm`) and
`reinforce_config` (lean defaults for the CLI). How a round runs (sample, update, weight
sync) and the in-process shortcuts that make it cheap at batch size 1, which rely on RLlib's
private attributes, are `trainables.rllib_fastpath.RoundsAlgorithm`, which `REINFORCE`
extends. It brings no default RLModule: pass one with `.rl_module(rl_module_spec=...)`
(`reinforce_config` passes `policies.dsm_module.dsm_module_spec`); its train pass must return
`Columns.ACTION_DIST_INPUTS` for its train action dist class.
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
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, StateDict, TensorType
from dsmnas.envs.errors import ConfigError
from dsmnas.trainables.learner import LearnerSettings
from dsmnas.trainables.rllib_fastpath import RoundsAlgorithm

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
            sampler always sees the latest weights, exactly as after a weight sync
            (`trainables.rllib_fastpath`).
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


class REINFORCE(RoundsAlgorithm):
    """One `train()` = `updates_per_iteration` rounds of: sample `train_batch_size` env
    steps, one `REINFORCETorchLearner` update, weight sync (none where the EnvRunner samples
    with the Learner's own module); the rounds are `trainables.rllib_fastpath`'s."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> REINFORCEConfig:
        return REINFORCEConfig()

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
    from dsmnas.policies.dsm_module import dsm_module_spec

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
        .rl_module(rl_module_spec=dsm_module_spec(model_config, module_class))
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
