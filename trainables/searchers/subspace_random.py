"""The paper's Fig. 7 random-search baselines that use subspaces.

- `random-update`: random search WITH subspace update. DSMNAS-v0 itself (`envs.DSMNASEnv`,
  so the rules are the env's) driven by uniformly random actions: a subspace index uniform
  over the K centers, then M (position, op) edits, the position uniform over the L
  positions and the op uniform over the ops the space allows there (repeats and no-op
  edits allowed, as the env's edit rule). The center is replaced when beta is better.
  Actions come from their own numpy stream of `env_config.seed`; the initial centers from
  the env's reset with that seed.
- `random-mined`: random search IN the final mined subspaces of DSM-NAS. Phase "dsm": a
  DSM-NAS search (`trainables.search.run_search`, same seed) on `mine_fraction` of the
  budget. Phase "random": the rest of the SAME budget (one clock: phase "dsm"'s queries are
  replayed on it first, so its charges and repeat cache carry over) on samples from the
  union of the K final subspaces: a center uniformly, then a point EXACTLY uniform over its
  Hamming ball of radius M minus the center itself (1 <= D <= M; see `sample_ball`; the
  env's edit rule would instead favour small distances: under it D = 4 has probability
  0.11 for NB201 and M = 4, against 0.71 uniformly). Needs Ray (DSM-NAS is an RLlib
  algorithm).

With `charge_init`, `random-update`'s clock includes the K initial queries, which are not in
its history; `random-mined` refuses it (its replay could not charge them).

Both answer as DSM-NAS does: `random-update` with the best center of the final graph
(which may be one of the K initial centers, queried free of charge as in DSM-NAS and so not
in the history), `random-mined` with the better of DSM-NAS's answer and the best query of
phase "random" (DSM-NAS's answer on ties). History: the env's columns; `random-mined` adds
`phase`, and its phase "random" rows carry the index of the sampled center in `subspace`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsmnas.envs import DSMNASEnv, EnvConfig
from dsmnas.envs.spaces import SearchSpace
from dsmnas.trainables.search import LearnerSettings, SearchResult, run_search
from dsmnas.trainables.searchers.base import Progress, QueryLog, make_rng, parse_settings
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import setting


@dataclass(frozen=True)
class RandomUpdateSettings:
    """Random search with subspace update has no settings of its own (K, M, reward and
    update rule are the env's)."""


@dataclass(frozen=True)
class RandomMinedSettings:
    """The DSM-NAS learner's settings (`LearnerSettings`: lr, entropy, ...) are accepted too."""

    mine_fraction: float = setting(
        0.5, "share of the budget spent by the DSM-NAS search that mines the subspaces")

    def __post_init__(self):
        if not 0 < self.mine_fraction < 1:
            raise ConfigError(
                f"random-mined mine_fraction must be in (0, 1), got {self.mine_fraction!r}"
            )


def _allowed_ops(space: SearchSpace) -> list[np.ndarray]:
    return [np.flatnonzero(row) for row in space.op_mask() > 0]


def run_random_update(
    env_config: EnvConfig, settings: dict[str, Any], progress: Progress = None
) -> SearchResult:
    """Random search with subspace update: DSMNAS-v0 with uniformly random actions."""
    (s,) = parse_settings("random-update", settings, RandomUpdateSettings)
    t0 = time.perf_counter()
    env = DSMNASEnv(env_config.to_dict())
    env.reset()  # the first reset is seeded with env_config.seed
    log = QueryLog(env_config, "random-update", s, progress, env.benchmark)
    startup_s = time.perf_counter() - t0
    rng = make_rng(env_config.seed, 1)
    allowed = _allowed_ops(env.space)
    K, L, M = env_config.K, env.space.L, env_config.M
    while True:
        action = [rng.integers(K)]
        for _ in range(M):
            p = int(rng.integers(L))
            action += [p, int(rng.choice(allowed[p]))]
        _, _, terminated, _, _ = env.step(np.array(action))
        if terminated:
            break
        r = env.history[-1]
        log.record(env.space.parse(r.arch), r.val_acc, r.cost_s,
                   subspace=r.subspace, reward=r.reward, accepted=r.accepted)
    arch, val = env.best()
    return log.result(
        answer=(env.space.parse(arch), val),
        final_centers=[env.space.format(c) for c in env.graph.centers],
        startup_s=startup_s,
    )


def sample_ball(
    space: SearchSpace, center: np.ndarray, M: int, rng: np.random.Generator
) -> np.ndarray:
    """A token vector uniform over {beta : 1 <= D(center, beta) <= M}, every position's op
    allowed by the space's op mask (uniform before the canonical form is taken)."""
    allowed = _allowed_ops(space)
    alternatives = [len(a) - 1 for a in allowed]
    L = space.L
    # ways[p, k]: token vectors that differ from the center in exactly k of positions p..L-1.
    ways = np.zeros((L + 1, M + 1))
    ways[L, 0] = 1.0
    for p in reversed(range(L)):
        ways[p] = ways[p + 1]
        ways[p, 1:] += alternatives[p] * ways[p + 1, :-1]
    if ways[0, 1:].sum() == 0:
        raise ConfigError(f"no architecture differs from {space.format(center)} at all")
    k = 1 + int(rng.choice(M, p=ways[0, 1:] / ways[0, 1:].sum()))
    beta = np.array(center, copy=True)
    for p in range(L):
        if k == 0:
            break
        # Change position p with the share of the remaining vectors that change it.
        if rng.random() < alternatives[p] * ways[p + 1, k - 1] / ways[p, k]:
            beta[p] = rng.choice([o for o in allowed[p] if o != center[p]])
            k -= 1
    return space.canonical(beta)


def check_random_mined(env_config: EnvConfig, settings: dict[str, Any] | None = None) -> None:
    """random-mined splits a budget of simulated seconds and replays its first phase."""
    if env_config.spec.budget != "seconds":
        raise ConfigError(
            f"random-mined splits a budget of simulated seconds; the {env_config.spec.name} "
            f"space counts queries"
        )
    if env_config.charge_init:
        # The initial centers' charges could not be replayed: they are not in the history.
        raise ConfigError("random-mined does not support charge_init=True")
    from dsmnas.envs.registry import get_space

    if not get_space(env_config.space).dense:
        raise ConfigError(
            f"random-mined samples whole Hamming balls, which leave the listed architectures "
            f"of {env_config.spec.name}"
        )


def run_random_mined(
    env_config: EnvConfig, settings: dict[str, Any], progress: Progress = None
) -> SearchResult:
    """DSM-NAS on `mine_fraction` of the budget, then random search in its final subspaces
    (settings: `RandomMinedSettings` and `LearnerSettings`). Ray must be initialised."""
    s, learner = parse_settings("random-mined", settings, RandomMinedSettings, LearnerSettings)
    check_random_mined(env_config, settings)
    log = QueryLog(env_config, "random-mined", s, progress)
    mine_cfg = dataclasses.replace(env_config, budget_s=s.mine_fraction * log.budget_s)
    mined = run_search(
        mine_cfg, learner, progress=(lambda line: progress(f"[mine] {line}")) if progress else None
    )
    log.start += mined.startup_s  # the RLlib algorithm's build is start-up, not search
    for row in mined.history.itertuples(index=False):
        tokens = log.space.parse(row.arch)
        q = log.benchmark.query(tokens)
        if q is None or (q.val_acc, q.cost_s) != (row.val_acc, row.cost_s):
            raise RuntimeError(
                f"replaying the DSM-NAS phase on the shared clock disagrees at step {row.step}"
            )
        log.record(tokens, q.val_acc, q.cost_s, subspace=row.subspace, reward=row.reward,
                   accepted=row.accepted, phase="dsm")
    if (log.clock.queries, log.clock.sim_time_s) != (mined.queries, mined.sim_time_s):
        raise RuntimeError("the shared clock disagrees with the DSM-NAS phase's after replay")
    centers = [log.space.parse(a) for a in mined.final_centers]
    rng = make_rng(env_config.seed, 2)
    while True:
        i = int(rng.integers(len(centers)))
        beta = sample_ball(log.space, centers[i], env_config.M, rng)
        if log.query(beta, subspace=i, phase="random") is None:
            break
    answer = None
    if not log.best_val > mined.val_acc:
        answer = (log.space.parse(mined.arch), mined.val_acc)
    return log.result(
        answer=answer,
        final_centers=mined.final_centers,
        startup_s=log.startup_s + mined.startup_s,
        learner=dataclasses.asdict(learner),
        mine={
            "budget_s": mine_cfg.budget_s,
            "arch": mined.arch,
            "val_acc": mined.val_acc,
            "queries": mined.queries,
            "sim_time_s": mined.sim_time_s,
            "final_centers": mined.final_centers,
        },
    )
