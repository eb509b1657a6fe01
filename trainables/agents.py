"""Other RLlib agents on DSMNAS-v0, and DSM-NAS+ (transfer), behind the methods registry.

Every function here has the registry's signature
`fn(env_config: EnvConfig, settings: dict, progress) -> SearchResult`, runs one search as one
episode of DSMNAS-v0 through `trainables.search.run_episode_search` (one in-process env, the
agent trained online during the episode), and is seeded by `env_config.seed`
(`.debugging(seed=...)` seeds torch, numpy and the env's first reset), so the same seed gives
the same history (APPO excepted: see `appo`). Settings are dataclasses; unknown keys raise
ValueError naming them and listing the allowed ones.

- `ppo`: PPO with the DSM-NAS controller (`policies.dsm_module.DSMNASModule`).
- `appo`: APPO with the same controller (its target network is a copy of the controller).
- `ppo-flat`: PPO with RLlib's default MLP model on the flattened observation
  (`FlattenObservations` env-to-module connector): a generic agent that does not see the graph.
- `dsm-plus`: DSM-NAS+ (Table II): a DSM-NAS search on cifar10, then the target dataset's search
  from the K final centers of that search.

`ppo`, `appo` and `ppo-flat` also run over N parallel workers (`EnvConfig.workers = N`): on
the synchronous vector env that `dsm-sync` uses (`trainables.workers.vector_search`), each
round the agent samples N actions from one subspace graph and the N proposals run at once;
the train batch is then rounded up to whole rounds (a multiple of N). With one worker the
env is DSMNAS-v0 as before.

Why gamma = 0 for the actor-critic agents: each step's reward is already the immediate
improvement R(beta|alpha) = val(beta) - val(alpha) of that query over the center it edited,
and DSM-NAS's own REINFORCE scores each step by that reward alone, never by a discounted
return. With gamma = 0 the advantage is R - V(s): PPO/APPO become a contextual bandit whose
baseline is a learned function of the graph (instead of DSM-NAS's moving average), so the
comparison with DSM-NAS isolates the learner, not the objective. It also makes truncating the
episode at every small train batch (`batch_mode="truncate_episodes"`, so that the policy is
updated during the one episode a search is) exact: no bootstrapped value is ever needed.

How the defaults were chosen: a few values of lr (and PPO's batch size) were compared on
seeds 100-109 (disjoint from the seeds 0-9 that `benchmarks/bench_agents.py` reports) by the
mean best validation accuracy of the search (its own metric; test accuracy was not used).
The differences between the PPO variants were within noise; APPO gained from a higher lr
than its default 5e-4 (3e-4 and 1e-3 were worse), and PPO-flat from a lower one (at lr 1e-2
its independent categoricals collapse early). For reference, the same agents with lr 1e-6
(an untrained, near-uniform policy, the env's greedy center updates doing all the work)
reach 84.38 (ppo) and 84.58 (ppo-flat) mean validation accuracy, against 84.72 and 84.76
when trained.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

from dsmnas.envs import DSMNASEnv, EnvConfig
from dsmnas.envs.settings import parse_settings
from dsmnas.trainables.search import (
    LearnerSettings,
    SearchResult,
    dsm_algo_config,
    run_episode_search,
)
from dsmnas.envs.errors import ConfigError
from dsmnas.trainables.learner import MESSAGE_PASSING

__all__ = [
    "APPOSettings",
    "FlatPPOSettings",
    "PPOSettings",
    "TRANSFER_SOURCE",
    "TRANSFER_TARGETS",
    "appo_algo_config",
    "ppo_algo_config",
    "ppo_flat_algo_config",
    "run_appo",
    "run_dsm_plus",
    "run_ppo",
    "run_ppo_flat",
]

TRANSFER_SOURCE = "cifar10"
"""DSM-NAS+ mines its starting centers on this dataset."""
TRANSFER_TARGETS = ("cifar100", "ImageNet16-120")
"""Datasets a DSM-NAS+ search can transfer to (the paper's Table II)."""

Progress = Callable[[str], None] | None


def _settings(cls, values: dict[str, Any], method: str):
    return parse_settings(method, values, cls)[0]


def _check(obj, positive_ints=(), positive=(), nonnegative=(), unit=()) -> None:
    """ValueError naming the first field of `obj` outside its range."""
    def bad(name, what):
        raise ConfigError(f"{name} must be {what}, got {getattr(obj, name)!r}")

    for name in positive_ints:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            bad(name, "an integer >= 1")
    for names, ok, what in (
        (positive, lambda v: v > 0, "a number > 0"),
        (nonnegative, lambda v: v >= 0, "a number >= 0"),
        (unit, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ):
        for name in names:
            v = getattr(obj, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
                bad(name, what)
    if not isinstance(getattr(obj, "use_graph", True), bool):
        bad("use_graph", "true or false")
    if getattr(obj, "message_passing", MESSAGE_PASSING[0]) not in MESSAGE_PASSING:
        bad("message_passing", " or ".join(MESSAGE_PASSING))


def _over_workers(config, env_config: EnvConfig, train_batch_size: int):
    """`config` as is with one worker; over N > 1 workers, on the synchronous vector env
    (N actions from one graph per round) with the train batch rounded up to whole rounds."""
    n = env_config.workers
    if n == 1:
        return config
    from dsmnas.trainables.workers import vector_search

    return vector_search(config, env_config).training(
        train_batch_size_per_learner=n * math.ceil(train_batch_size / n))


def _common(config, env_config: EnvConfig):
    """Env, one in-process env runner and Learner, seeding: what every agent here shares."""
    return (
        config.framework("torch")
        .environment(
            DSMNASEnv,
            env_config=env_config.to_dict(),
            # Discrete actions need no unsquashing.
            normalize_actions=False,
        )
        # The env must live in this process: `run_episode_search` reads its final graph.
        .env_runners(
            num_env_runners=0,
            num_envs_per_env_runner=1,
            batch_mode="truncate_episodes",
            rollout_fragment_length="auto",
        )
        .learners(num_learners=0)
        # One train() = one training_step (one batch); no per-iteration time minimum.
        .reporting(
            min_time_s_per_iteration=0,
            min_sample_timesteps_per_iteration=0,
            min_train_timesteps_per_iteration=0,
        )
        .debugging(seed=env_config.seed)
    )


# ------------------------------------------------------------------------------------- PPO
@dataclass(frozen=True)
class _PPOSchedule:
    """The PPO schedule that `ppo` and `ppo-flat` share, with its checks."""

    lr: float = 1e-2
    """Adam learning rate."""
    gamma: float = 0.0
    """Discount: 0, each step is scored by its own improvement (see the module docstring)."""
    train_batch_size: int = 8
    """Env steps (queries) per update: small, so the policy learns during the episode."""
    minibatch_size: int = 8
    """SGD minibatch (the whole batch by default)."""
    num_epochs: int = 4
    """Passes over each batch."""
    entropy_coeff: float = 7.5e-4
    """Entropy weight (the paper's lambda)."""
    clip_param: float = 0.2
    """PPO's clip of the probability ratio."""

    def __post_init__(self) -> None:
        _check(self, positive_ints=("train_batch_size", "minibatch_size", "num_epochs"),
               positive=("lr", "clip_param"), nonnegative=("entropy_coeff",), unit=("gamma",))
        if self.minibatch_size > self.train_batch_size:
            raise ConfigError(
                f"minibatch_size ({self.minibatch_size}) must be <= train_batch_size "
                f"({self.train_batch_size})"
            )


@dataclass(frozen=True)
class PPOSettings(_PPOSchedule):
    """PPO with the DSM-NAS controller. A 25,000 s search is ~190 env steps, so the batch is
    small (8 queries: ~24 updates per search) and each batch is reused for 4 epochs; PPO's
    clipping keeps those reuses safe at the paper's learning rate. PPO standardises the
    advantages of each batch and Adam normalises the gradient scale, so the paper's lr
    carries over although its REINFORCE advantages are in accuracy points."""

    lr: float = 1e-2
    """Adam learning rate (the paper's REINFORCE lr on NB201; 3e-3 did as well)."""
    vf_loss_coeff: float = 1.0
    """Weight of the value loss (the value head shares the graph encoder)."""
    use_graph: bool = True
    """GNN over the subspace graph (off: per-node FC layers, the paper's Fig. 8b)."""
    message_passing: str = "two-way"
    """The GNN's messages: "two-way" (the official code's) or "one-way" (weaker -> better
    only: what the README's ppo/appo rows were made with); see `policies.gnn`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, nonnegative=("vf_loss_coeff",))


def ppo_algo_config(env_config: EnvConfig, s: PPOSettings = PPOSettings()):
    """The `PPOConfig` of one `ppo` search."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from dsmnas.policies.dsm_module import DSMNASModule

    config = _common(PPOConfig(), env_config).rl_module(
        rl_module_spec=RLModuleSpec(
            module_class=DSMNASModule, model_config={"use_graph": s.use_graph, "message_passing": s.message_passing}
        )
    ).training(**_ppo_training(s), vf_loss_coeff=s.vf_loss_coeff)
    return _over_workers(config, env_config, s.train_batch_size)


def _ppo_training(s) -> dict[str, Any]:
    """The PPO training settings that `ppo` and `ppo-flat` share."""
    return dict(
        lr=s.lr,
        gamma=s.gamma,
        lambda_=1.0,  # irrelevant at gamma = 0: the advantage is R - V(s)
        train_batch_size_per_learner=s.train_batch_size,
        minibatch_size=s.minibatch_size,
        num_epochs=s.num_epochs,
        entropy_coeff=s.entropy_coeff,
        clip_param=s.clip_param,
        # Rewards are accuracy points (-90..+90): RLlib's default clip of the squared value
        # error at 10 would stop the value head learning from most steps.
        vf_clip_param=float("inf"),
        # The clipped objective alone; an adaptive KL penalty is noisy on 8-step batches.
        use_kl_loss=False,
    )


def run_ppo(
    env_config: EnvConfig, settings: dict[str, Any], progress: Progress = None
) -> SearchResult:
    """One search by PPO with the DSM-NAS controller (settings: `PPOSettings`)."""
    s = _settings(PPOSettings, settings, "ppo")
    return run_episode_search(
        ppo_algo_config(env_config, s), env_config, {"agent": asdict(s)}, progress
    )


# ------------------------------------------------------------------------------------ APPO
@dataclass(frozen=True)
class APPOSettings:
    """APPO with the DSM-NAS controller, its Learner and env runner both in this process.

    RLlib's IMPALA/APPO Learner always updates in a background thread, even when it is
    local (`num_learners=0`): the driver queues each sampled batch and the env runner gets
    new weights whenever the thread has published some. So which weights sample step t
    depends on thread timing, and the Learner's circular buffer draws batches with an
    unseeded RNG: APPO searches are NOT reproducible from the seed alone (the initial
    centers and the first batch are).

    APPO needs no remote env runners: with `num_env_runners=0` IMPALA's `training_step`
    samples from the local env runner, and with `num_learners=0` the Learner (and its
    update thread) lives in this process too. Only APPO's default
    `min_time_s_per_iteration=10` has to go (zeroed in `_common`): one `train()` would
    otherwise keep sampling for 10 s, far past the episode's end."""

    lr: float = 3e-3
    """Adam learning rate (3e-4 and 1e-3, around APPO's default 5e-4, learned too slowly in
    ~190 steps; 1e-2 did as well). APPO does not standardise advantages: they are in
    accuracy points, and its global-norm gradient clip bounds the steps."""
    gamma: float = 0.0
    """Discount: 0, each step is scored by its own improvement (see the module docstring)."""
    train_batch_size: int = 8
    """Env steps (queries) per batch: small, so the policy learns during the episode."""
    entropy_coeff: float = 7.5e-4
    """Entropy weight (the paper's lambda)."""
    clip_param: float = 0.2
    """Clip of the probability ratio to the target network's policy."""
    vf_loss_coeff: float = 0.5
    """Weight of the value loss (APPO's default)."""
    grad_clip: float = 40.0
    """Global-norm gradient clip (APPO's default)."""
    circular_buffer_num_batches: int = 4
    """Batches kept in the Learner's circular buffer."""
    circular_buffer_iterations_per_batch: int = 2
    """Times each batch may be trained on."""
    target_network_update_freq: int = 1
    """Target network update period, in units of buffer_batches x iterations x batch."""
    use_graph: bool = True
    """GNN over the subspace graph (off: per-node FC layers, the paper's Fig. 8b)."""
    message_passing: str = "two-way"
    """The GNN's messages: "two-way" (the official code's) or "one-way" (weaker -> better
    only: what the README's ppo/appo rows were made with); see `policies.gnn`."""

    def __post_init__(self) -> None:
        _check(self, positive_ints=("train_batch_size", "circular_buffer_num_batches",
                                    "circular_buffer_iterations_per_batch",
                                    "target_network_update_freq"),
               positive=("lr", "clip_param", "grad_clip"),
               nonnegative=("entropy_coeff", "vf_loss_coeff"), unit=("gamma",))


def appo_algo_config(env_config: EnvConfig, s: APPOSettings = APPOSettings()):
    """The `APPOConfig` of one `appo` search."""
    from ray.rllib.algorithms.appo import APPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from dsmnas.policies.dsm_module import DSMNASModule

    config = _common(APPOConfig(), env_config).rl_module(
        rl_module_spec=RLModuleSpec(
            module_class=DSMNASModule, model_config={"use_graph": s.use_graph, "message_passing": s.message_passing}
        )
    ).training(
        lr=s.lr,
        gamma=s.gamma,
        train_batch_size_per_learner=s.train_batch_size,
        entropy_coeff=s.entropy_coeff,
        clip_param=s.clip_param,
        vf_loss_coeff=s.vf_loss_coeff,
        grad_clip=s.grad_clip,
        circular_buffer_num_batches=s.circular_buffer_num_batches,
        circular_buffer_iterations_per_batch=s.circular_buffer_iterations_per_batch,
        target_network_update_freq=s.target_network_update_freq,
        # Send new weights to the env runner after every training step.
        broadcast_interval=1,
    )
    return _over_workers(config, env_config, s.train_batch_size)


def run_appo(
    env_config: EnvConfig, settings: dict[str, Any], progress: Progress = None
) -> SearchResult:
    """One search by APPO with the DSM-NAS controller (settings: `APPOSettings`)."""
    s = _settings(APPOSettings, settings, "appo")
    return run_episode_search(
        appo_algo_config(env_config, s), env_config, {"agent": asdict(s)}, progress
    )


# -------------------------------------------------------------------------------- PPO-flat
@dataclass(frozen=True)
class FlatPPOSettings(_PPOSchedule):
    """PPO with RLlib's default model (MLP encoder, separate value MLP, MultiDiscrete
    distribution: one independent categorical per action component) on the flattened
    observation (tokens as numbers, accuracies, adjacency, op mask: one vector). It does
    not see the graph structure, and its edits are not conditioned on the chosen center.
    Same schedule as `ppo`."""

    lr: float = 1e-3
    """Adam learning rate (3e-4 did as well; at 1e-2 the policy collapses early)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value MLPs (RLlib's `fcnet_hiddens`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        hidden = self.hidden
        if not (isinstance(hidden, (list, tuple)) and hidden and all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden
        )):
            raise ConfigError(f"hidden must be a non-empty list of integers >= 1, got {hidden!r}")
        object.__setattr__(self, "hidden", tuple(hidden))


def ppo_flat_algo_config(env_config: EnvConfig, s: FlatPPOSettings = FlatPPOSettings()):
    """The `PPOConfig` of one `ppo-flat` search."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    config = (
        _common(PPOConfig(), env_config).env_runners(
            # Writes the flat observation back into the episodes, so the Learner sees it too.
            env_to_module_connector=lambda env, spaces=None, device=None: FlattenObservations()
        )
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(s.hidden)))
        .training(**_ppo_training(s))
    )
    return _over_workers(config, env_config, s.train_batch_size)


def run_ppo_flat(
    env_config: EnvConfig, settings: dict[str, Any], progress: Progress = None
) -> SearchResult:
    """One search by PPO with RLlib's default model on flat observations (`FlatPPOSettings`)."""
    s = _settings(FlatPPOSettings, settings, "ppo-flat")
    return run_episode_search(
        ppo_flat_algo_config(env_config, s), env_config,
        {"agent": {**asdict(s), "hidden": list(s.hidden)}}, progress,
    )


# -------------------------------------------------------------------------------- DSM-NAS+
def check_dsm_plus(env_config: EnvConfig, settings: dict[str, Any] | None = None) -> None:
    """DSM-NAS+ needs a space with the source dataset and a target dataset (NAS-Bench-201)."""
    if env_config.dataset not in TRANSFER_TARGETS:
        raise ConfigError(
            f"dsm-plus transfers from {TRANSFER_SOURCE} to another NAS-Bench-201 dataset; "
            f"dataset must be one of {', '.join(TRANSFER_TARGETS)}, got "
            f"{env_config.dataset!r} (space {env_config.spec.name})"
        )
    if env_config.init_centers is not None:
        raise ConfigError("dsm-plus picks its initial centers itself; do not set init_centers")


def run_dsm_plus(
    env_config: EnvConfig, settings: dict[str, Any], progress: Progress = None
) -> SearchResult:
    """DSM-NAS+: a DSM-NAS search on cifar10, then one on `env_config.dataset` from its
    K final centers (the paper's Table II transfer).

    The source search uses `env_config` with only the dataset changed (same seed, K, M,
    table and budget) and the same `LearnerSettings`. Its cost is NOT charged to the target
    search: `result.queries` and `result.sim_time_s` are the target search's alone (the
    paper reports DSM-NAS+ at the same 25,000 s as the other methods and treats the CIFAR-10
    centers as prior knowledge). The target's budget is spent at the target dataset's
    costs: on the NAS-Bench-201 table a query costs ~2x cifar10's on cifar100 and ~6x on
    ImageNet16-120, so 25,000 s buy ~95 and ~32 queries there. `result.config["transfer"]`
    records the source search's answer, queries, simulated time and the centers it handed
    over.
    """
    check_dsm_plus(env_config)
    learner = _settings(LearnerSettings, settings, "dsm-plus")
    source_cfg = dataclasses.replace(env_config, dataset=TRANSFER_SOURCE)
    source = run_episode_search(
        dsm_algo_config(source_cfg, learner), source_cfg, {"learner": asdict(learner)},
        (lambda line: progress(f"[{TRANSFER_SOURCE}] {line}")) if progress else None,
    )
    target_cfg = dataclasses.replace(env_config, init_centers=tuple(source.final_centers))
    result = run_episode_search(
        dsm_algo_config(target_cfg, learner), target_cfg, {"learner": asdict(learner)},
        progress,
    )
    result.config["transfer"] = {
        "source_dataset": TRANSFER_SOURCE,
        "source_arch": source.arch,
        "source_val_acc": source.val_acc,
        "source_queries": source.queries,
        "source_sim_time_s": source.sim_time_s,
        "source_wall_time_s": source.wall_time_s,
        "init_centers": list(source.final_centers),
        "charged_to_budget": False,
    }
    return result
