"""The other RLlib agents on DSMNAS-v0, behind the methods registry: one table, `AGENTS`.

Each agent is a row of `AGENTS` (name -> `Agent`: RLlib's algorithm config class, the
settings dataclass, and the agent's own part of the config); `agent_config` builds the config
of one search from a row and `run_agent` runs it, as one episode of DSMNAS-v0 through
`trainables.search.run_episode_search` (one in-process env, the agent trained online during
the episode). `run_ppo`, `run_appo` and `run_ppo_flat` are `run_agent` for one row, with the
registry's signature `fn(env_config: EnvConfig, settings: dict, progress) -> SearchResult`.
A search is seeded by `env_config.seed` (`.debugging(seed=...)` seeds torch, numpy and the
env's first reset), so the same seed gives the same history (APPO excepted: see `APPOSettings`).
Settings are dataclasses; unknown keys raise ValueError naming them and listing the allowed
ones.

- `ppo`: PPO with the DSM-NAS controller (`policies.dsm_module.dsm_module_spec`).
- `appo`: APPO with the same controller (its target network is a copy of the controller).
- `ppo-flat`: PPO with RLlib's default MLP model on the flattened observation
  (`FlattenObservations` env-to-module connector): a generic agent that does not see the graph.

DSM-NAS+ (`dsm-plus`), DSM-NAS from another dataset's final centers, is a DSM-NAS variant:
`trainables.variants`.

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

import importlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

from dsmnas.envs import DSMNASEnv, EnvConfig
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import parse_settings, setting
from dsmnas.trainables.learner import MESSAGE_PASSING
from dsmnas.trainables.search import SearchResult, run_episode_search

__all__ = [
    "AGENTS",
    "APPOSettings",
    "Agent",
    "FlatPPOSettings",
    "PPOSettings",
    "agent_config",
    "run_agent",
    "run_appo",
    "run_ppo",
    "run_ppo_flat",
]

Progress = Callable[[str], None] | None


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


# ------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class _PPOSchedule:
    """The PPO schedule that `ppo` and `ppo-flat` share, with its checks."""

    lr: float = setting(1e-2, "Adam learning rate")
    gamma: float = setting(
        0.0, "discount: 0, each step is scored by its own improvement (see the module "
        "docstring)")
    train_batch_size: int = setting(
        8, "env steps (queries) per update: small, so the policy learns during the episode")
    minibatch_size: int = setting(8, "SGD minibatch (the whole batch by default)")
    num_epochs: int = setting(4, "passes over each batch")
    entropy_coeff: float = setting(7.5e-4, "entropy weight (the paper's lambda)")
    clip_param: float = setting(0.2, "PPO's clip of the probability ratio")

    def __post_init__(self) -> None:
        _check(self, positive_ints=("train_batch_size", "minibatch_size", "num_epochs"),
               positive=("lr", "clip_param"), nonnegative=("entropy_coeff",), unit=("gamma",))
        if self.minibatch_size > self.train_batch_size:
            raise ConfigError(
                f"minibatch_size ({self.minibatch_size}) must be <= train_batch_size "
                f"({self.train_batch_size})"
            )


@dataclass(frozen=True)
class _Controller:
    """The DSM-NAS controller's settings, for the agents that train it (ppo, appo)."""

    use_graph: bool = setting(
        True, "GNN over the subspace graph (off: per-node FC layers, the paper's Fig. 8b)")
    message_passing: str = setting(
        "two-way", "the GNN's messages: two-way (the official code's: each center hears from "
        "all K-1 others) or one-way (weaker -> better only); see `policies.gnn`")


@dataclass(frozen=True)
class PPOSettings(_PPOSchedule, _Controller):
    """PPO with the DSM-NAS controller. A 25,000 s search is ~190 env steps, so the batch is
    small (8 queries: ~24 updates per search) and each batch is reused for 4 epochs; PPO's
    clipping keeps those reuses safe at the paper's learning rate. PPO standardises the
    advantages of each batch and Adam normalises the gradient scale, so the paper's lr
    carries over although its REINFORCE advantages are in accuracy points."""

    lr: float = setting(
        1e-2, "Adam learning rate (the paper's REINFORCE lr on NB201; 3e-3 did as well)")
    vf_loss_coeff: float = setting(
        1.0, "weight of the value loss (the value head shares the graph encoder)")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, nonnegative=("vf_loss_coeff",))


@dataclass(frozen=True)
class APPOSettings(_Controller):
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

    lr: float = setting(
        3e-3, "Adam learning rate (3e-4 and 1e-3, around APPO's default 5e-4, learned too "
        "slowly in ~190 steps; 1e-2 did as well). APPO does not standardise advantages: "
        "they are in accuracy points, and its global-norm gradient clip bounds the steps")
    gamma: float = setting(
        0.0, "discount: 0, each step is scored by its own improvement (see the module "
        "docstring)")
    train_batch_size: int = setting(
        8, "env steps (queries) per batch: small, so the policy learns during the episode")
    entropy_coeff: float = setting(7.5e-4, "entropy weight (the paper's lambda)")
    clip_param: float = setting(
        0.2, "clip of the probability ratio to the target network's policy")
    vf_loss_coeff: float = setting(0.5, "weight of the value loss (APPO's default)")
    grad_clip: float = setting(40.0, "global-norm gradient clip (APPO's default)")
    circular_buffer_num_batches: int = setting(4, "batches kept in the Learner's circular buffer")
    circular_buffer_iterations_per_batch: int = setting(2, "times each batch may be trained on")
    target_network_update_freq: int = setting(
        1, "target network update period, in units of buffer_batches x iterations x batch")

    def __post_init__(self) -> None:
        _check(self, positive_ints=("train_batch_size", "circular_buffer_num_batches",
                                    "circular_buffer_iterations_per_batch",
                                    "target_network_update_freq"),
               positive=("lr", "clip_param", "grad_clip"),
               nonnegative=("entropy_coeff", "vf_loss_coeff"), unit=("gamma",))


@dataclass(frozen=True)
class FlatPPOSettings(_PPOSchedule):
    """PPO with RLlib's default model (MLP encoder, separate value MLP, MultiDiscrete
    distribution: one independent categorical per action component) on the flattened
    observation (tokens as numbers, accuracies, adjacency, op mask: one vector). It does
    not see the graph structure, and its edits are not conditioned on the chosen center.
    Same schedule as `ppo`."""

    lr: float = setting(
        1e-3, "Adam learning rate (3e-4 did as well; at 1e-2 the policy collapses early)")
    hidden: tuple[int, ...] = setting(
        (64, 64), "hidden layer sizes of the policy and value MLPs (RLlib's `fcnet_hiddens`)")

    def __post_init__(self) -> None:
        super().__post_init__()
        hidden = self.hidden
        if not (isinstance(hidden, (list, tuple)) and hidden and all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden
        )):
            raise ConfigError(f"hidden must be a non-empty list of integers >= 1, got {hidden!r}")
        object.__setattr__(self, "hidden", tuple(hidden))


# ---------------------------------------------------------------------- each agent's config
def _dsm_module(config, s):
    """`config` with the DSM-NAS controller, set by `s`'s module fields."""
    from dsmnas.policies.dsm_module import dsm_module_spec

    return config.rl_module(rl_module_spec=dsm_module_spec(
        {"use_graph": s.use_graph, "message_passing": s.message_passing}))


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


def _ppo(config, s: PPOSettings):
    return _dsm_module(config, s).training(**_ppo_training(s), vf_loss_coeff=s.vf_loss_coeff)


def _appo(config, s: APPOSettings):
    return _dsm_module(config, s).training(
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


def _ppo_flat(config, s: FlatPPOSettings):
    from ray.rllib.connectors.env_to_module import FlattenObservations
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return (
        config.env_runners(
            # Writes the flat observation back into the episodes, so the Learner sees it too.
            env_to_module_connector=lambda env, spaces=None, device=None: FlattenObservations()
        )
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(s.hidden)))
        .training(**_ppo_training(s))
    )


# ---------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Agent:
    """One RLlib agent on DSMNAS-v0."""

    config_class: str
    """"module:Class" of its RLlib `AlgorithmConfig` (imported when a config is built)."""
    settings: type
    """Its settings dataclass (the method's settings in the registry)."""
    configure: Callable[[Any, Any], Any]
    """`fn(config, settings) -> config`: its model and training settings, on the part that
    every agent shares (`_common`); `agent_config` then spreads it over N workers."""


AGENTS: dict[str, Agent] = {
    "ppo": Agent("ray.rllib.algorithms.ppo:PPOConfig", PPOSettings, _ppo),
    "appo": Agent("ray.rllib.algorithms.appo:APPOConfig", APPOSettings, _appo),
    "ppo-flat": Agent("ray.rllib.algorithms.ppo:PPOConfig", FlatPPOSettings, _ppo_flat),
}


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


def _over_workers(config, env_config: EnvConfig, train_batch_size: int):
    """`config` as is with one worker; over N > 1 workers, on the synchronous vector env
    (N actions from one graph per round) with the train batch rounded up to whole rounds."""
    n = env_config.workers
    if n == 1:
        return config
    from dsmnas.trainables.workers import vector_search

    return vector_search(config, env_config).training(
        train_batch_size_per_learner=n * math.ceil(train_batch_size / n))


def _agent(name: str) -> Agent:
    try:
        return AGENTS[name]
    except KeyError:
        raise ConfigError(f"unknown agent {name!r}; allowed: {', '.join(AGENTS)}") from None


def agent_config(name: str, env_config: EnvConfig, settings=None):
    """The RLlib `AlgorithmConfig` of one search by agent `name` (settings: its settings
    dataclass; default, its defaults)."""
    agent = _agent(name)
    s = agent.settings() if settings is None else settings
    module, cls = agent.config_class.split(":")
    config = agent.configure(_common(getattr(importlib.import_module(module), cls)(),
                                     env_config), s)
    return _over_workers(config, env_config, s.train_batch_size)


def run_agent(name: str, env_config: EnvConfig, settings: dict[str, Any],
              progress: Progress = None) -> SearchResult:
    """One search by agent `name`, its settings given as a dict (`result.config["agent"]`)."""
    s = parse_settings(name, settings, _agent(name).settings)[0]
    # tuples (ppo-flat's hidden) recorded as lists, as JSON gives them back
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()}
    return run_episode_search(agent_config(name, env_config, s), env_config,
                              {"agent": recorded}, progress)


def _runner(name: str):
    def run(env_config: EnvConfig, settings: dict[str, Any], progress: Progress = None
            ) -> SearchResult:
        return run_agent(name, env_config, settings, progress)

    run.__name__ = run.__qualname__ = f"run_{name.replace('-', '_')}"
    run.__doc__ = (f"One `{name}` search (settings: "
                   f"`{AGENTS[name].settings.__name__}`; module docstring).")
    return run


run_ppo, run_appo, run_ppo_flat = _runner("ppo"), _runner("appo"), _runner("ppo-flat")
