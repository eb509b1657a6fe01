"""DSMNAS-v0: one DSM-NAS search posed as one Gymnasium episode.

The environment composes a search space (encoding, edits), a benchmark (scores, budget clock)
and the subspace graph. It never imports RLlib; all randomness comes from `self.np_random`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dsmnas.envs.benchmarks import make_benchmark
from dsmnas.envs.config import EnvConfig
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.graph import SubspaceGraph
from dsmnas.envs.mo_subspaces import OBSERVATION_KEY, SubspaceObjectives
from dsmnas.envs.records import HISTORY_COLUMNS, QueryRecord
from dsmnas.envs.registry import get_space


def dsm_spaces(K: int, L: int, C: int, M: int, objectives: int = 0
               ) -> tuple[spaces.Dict, spaces.MultiDiscrete]:
    """DSMNAS-v0's (observation, action) spaces for K subspaces, L positions, C choices and
    M edits (and `objectives` m > 0: the multi-objective form's `objectives` key, (K, 2m)):
    what a module built without an env (tests, benchmarks) is given."""
    keys = {
        "tokens": spaces.Box(0, C - 1, (K, L), np.int64),
        "val_acc": spaces.Box(0.0, 1.0, (K,), np.float32),
        "adj": spaces.Box(0.0, 1.0, (K, K), np.float32),
        "op_mask": spaces.Box(0.0, 1.0, (L, C), np.float32),
    }
    if objectives:
        keys[OBSERVATION_KEY] = spaces.Box(0.0, 1.0, (K, 2 * objectives), np.float32)
    return spaces.Dict(keys), spaces.MultiDiscrete([K] + [L, C] * M)


class DSMNASEnv(gym.Env):
    """## Description
    DSM-NAS (Automated Dominative Subspace Mining) keeps K candidate subspaces, each the
    Hamming ball of radius M around a center architecture, linked in a subspace graph by
    weak-to-better edges. Each step the agent picks a subspace (global search) and M
    (position, op) edits (local search); beta = alpha (+) edits is queried on the benchmark.

    ## Action Space
    `MultiDiscrete([K] + [L, C] * M)`: the subspace index, then M (position, op) pairs,
    applied in order (repeats and no-op edits allowed), then brought to the space's canonical
    form. So D(alpha, beta) <= M where the canonical form changes nothing (NAS-Bench-201);
    in the MobileNet-like space it moves absent layers to the end of their unit, as the
    official code does, which can shift a unit's later layers: D can exceed M (M = 3, edits
    drawn uniformly on sampled centers: D = 4 for 1.39 % and 5 for 0.01 % of 20,000 edit
    lists).

    ## Observation Space
    `Dict` of fixed-shape arrays (RLlib batches it; it has no `Graph` support):
    - `tokens` (K, L) int64: the centers' tokens;
    - `val_acc` (K,) float32: the centers' validation accuracies as fractions in [0, 1];
    - `adj` (K, K) float32: adj[i, j] = 1 iff edge i -> j (center i weaker than j, ties by
      index);
    - `op_mask` (L, C) float32: 1 where an op is allowed at a position (the policy masks);
    - with `objectives` set (m of them), `objectives` (K, 2m) float32: each center's
      normalised objectives, then its weight vector (`envs.mo_subspaces`).

    ## Rewards
    `improvement` (default): R(beta|alpha) = val(beta) - val(alpha), in accuracy points;
    `absolute`: val(beta) (the paper's Fig. 8a ablation). With several objectives the
    reward is `envs.mo_subspaces`' (`mo_form`): the drop of center i's augmented Tchebycheff
    value, or the hypervolume beta adds to the known front; `info["objectives"]` holds
    beta's raw objective values.

    ## Starting State
    K centers drawn uniformly from the space with the reset seed, or `init_centers` (DSM-NAS+).
    Their queries are not charged unless `charge_init` is set (as the official code).

    ## Episode End
    Terminated when the next query would cross the budget: that query is not made, the
    step's reward is 0 and `info["queried"]` is False. The agent still learns from that
    step (REINFORCE makes 26 updates for 25 queries): RLlib trains on every sampled step, and
    since no query follows, the extra update cannot change the search's history or answer;
    it only moves the final weights (what a checkpoint of a finished search holds). Centers never get worse: alpha is
    replaced by beta only when R > 0 (and `update_subspaces` is on) and, in a space with a
    space with limits (`metric <= value`, e.g. the mobile setting's MACs), beta is within them.
    With `over_limit="penalty"` a beta over a limit is not queried (no budget spent; reward
    -100 times its largest relative overshoot, e.g. -100 * (MACs / limit - 1),
    `info["queried"]` False), and the episode is truncated after `MAX_STEPS_PER_QUERY` steps
    per query of a query budget, or after `MAX_SKIPS_IN_A_ROW` such proposals in a row.

    ## Arguments
    The fields of `envs.config.EnvConfig` as keyword arguments (unknown ones raise).

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": []}
    MAX_STEPS_PER_QUERY = 10
    """With `over_limit="penalty"` an episode is truncated after this many steps per query of
    the budget (steps over the limit make no query, so they alone would never end it)."""
    MAX_SKIPS_IN_A_ROW = 1000
    """The same for budgets of simulated seconds: this many proposals in a row over a limit."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs):
        # RLlib passes an EnvContext (a dict) positionally; gymnasium.make passes kwargs.
        cfg = EnvConfig.from_dict({**dict(config or {}), **kwargs})
        self.space = get_space(cfg.space)
        cfg.validate(self.space.L)
        self.config = cfg
        self.benchmark = make_benchmark(cfg)
        self._init = None
        if cfg.init_centers is not None:
            self._init = np.stack([self.space.parse_any(a) for a in cfg.init_centers])
            over = [self.space.format(c) for c in self._init if not self.benchmark.feasible(c)]
            if over:
                raise ConfigError(
                    f"init_centers {over} exceed the limit ({self.benchmark.limit_text()})"
                )
        self.history_columns = HISTORY_COLUMNS + self.benchmark.history_metrics
        """HISTORY_COLUMNS, then the benchmark's per-query metrics (`macs_m` in the
        MobileNet-like space, any limited metric)."""
        L, C, K, M = self.space.L, self.space.C, cfg.K, cfg.M
        self._op_mask = self.space.op_mask()
        self._acc_scale = self.benchmark.acc_scale
        objectives = self.benchmark.objectives
        self.mo = (None if objectives is None
                   else SubspaceObjectives(objectives, K, cfg.mo_form))
        """DSM-NAS's multi-objective form (`envs.mo_subspaces`), None with one objective."""
        self.observation_space, self.action_space = dsm_spaces(
            K, L, C, M, 0 if objectives is None else len(objectives.names))
        self._seeded = False
        self.graph: SubspaceGraph | None = None
        self.history: list[QueryRecord] = []
        self.steps = 0
        self.skipped_over_limit = 0
        """Steps of this episode, and those of them over the MACs limit that made no query
        (`over_limit="penalty"`)."""
        self.episodes_finished = 0
        self._skips_in_a_row = 0
        self.last_finished: tuple[SubspaceGraph, list[QueryRecord], dict] | None = None
        """(final graph, history, clock state) of the last finished episode, kept for the
        caller: an RLlib env runner resets the env right after an episode ends."""

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and not self._seeded:
            seed = self.config.seed
        super().reset(seed=seed)
        self._seeded = True
        self.benchmark.clock.reset()
        centers = (
            self._init.copy()
            if self._init is not None
            else np.stack([self.benchmark.sample(self.np_random) for _ in range(self.config.K)])
        )
        vals = []
        for c in centers:
            q = self.benchmark.query(c, charge=self.config.charge_init)
            if q is None:
                raise ConfigError(
                    f"budget_s={self.benchmark.clock.budget_s} cannot pay for the "
                    f"{self.config.K} initial centers (charge_init is on)"
                )
            vals.append(q.val_acc)
        self.graph = SubspaceGraph(centers, np.array(vals))
        if self.mo is not None:
            bench = self.benchmark
            self.mo.start(np.array([self.mo.raw(v, bench.query_metrics(c))
                                    for c, v in zip(centers, vals)]),
                          np.array([bench.feasible(c) for c in centers]))
        self.history = []
        self.steps = 0
        self.skipped_over_limit = 0
        self._skips_in_a_row = 0
        return self._obs(), self._info()

    def _action(self, action) -> np.ndarray:
        """`action` as int64, checked against the action space's shape."""
        a = np.asarray(action, dtype=np.int64)
        if a.shape != self.action_space.shape:
            raise ConfigError(
                f"action must have shape {self.action_space.shape} (subspace then "
                f"{self.config.M} (position, op) pairs), got {a.tolist()}"
            )
        return a

    def step(self, action):
        a = self._action(action)
        i = int(a[0])
        alpha = self.graph.centers[i]
        val_alpha = float(self.graph.val_acc[i])
        beta = self.space.apply_edits(alpha, a[1:].reshape(-1, 2))
        self.steps += 1
        bench = self.benchmark
        if self.config.over_limit == "penalty" and not bench.feasible(beta):
            # dsm-macs: a limited metric is counted, not measured: no query, minus the
            # overshoot in %
            self.skipped_over_limit += 1
            self._skips_in_a_row += 1
            reward = -100.0 * bench.overshoot(beta)
            if bench.clock.budget_queries is not None:
                truncated = self.steps >= self.MAX_STEPS_PER_QUERY * bench.clock.budget_queries
            else:
                truncated = self._skips_in_a_row >= self.MAX_SKIPS_IN_A_ROW
            if truncated:
                self._finish()
            return self._obs(), reward, False, truncated, self._info(i, beta, queried=False)
        self._skips_in_a_row = 0
        q = bench.query(beta)
        if q is None:
            self._finish()
            return self._obs(), 0.0, True, False, self._info(i, beta, queried=False)
        metrics = bench.query_metrics(beta)
        if self.mo is None:
            improvement = q.val_acc - val_alpha
            # the mobile setting: a center is only replaced by an architecture within the
            # limits
            accepted = improvement > 0 and self.config.update_subspaces and bench.feasible(beta)
            reward = improvement if self.config.reward == "improvement" else q.val_acc
        else:
            raw = self.mo.raw(q.val_acc, metrics)
            reward, better = self.mo.judge(i, raw, bench.feasible(beta),
                                           self.config.reward == "absolute")
            accepted = better and self.config.update_subspaces
            if accepted:
                self.mo.replace(i, raw)
        if accepted:
            self.graph.replace(i, beta, q.val_acc)
        self.history.append(QueryRecord(
            step=len(self.history), subspace=i, arch=self.space.format(beta),
            val_acc=q.val_acc, reward=reward, accepted=accepted, cost_s=q.cost_s,
            sim_time_s=bench.clock.sim_time_s, metrics=metrics,
        ))
        info = self._info(i, beta, q.val_acc, q.cost_s, accepted)
        if self.mo is not None:
            info["objectives"] = self.mo.info(raw)
        return self._obs(), float(reward), False, False, info

    def step_batch(self, actions) -> tuple[np.ndarray, bool]:
        """One synchronous step over the clock's N workers (`dsm-sync`): the rewards of the
        N actions, and whether the search ended.

        All N actions were sampled from the same graph; their proposals beta_j = alpha_i(j)
        (+) edits_j are queried at once (each on the earliest free worker, i.e. all N start
        together), then every worker waits for the slowest (`BudgetClock.barrier`). Reward j
        is R(beta_j | alpha_i(j)) against the center as it was when the actions were sampled.
        Then the graph is updated with all improvements; conflicts on one center: of the
        proposals that improve on it (and are within the limits) the best replaces it, the
        first on ties, so each center moves at most once per step and only ever gets better.
        A query the clock refuses is not made (reward 0) and ends the search after this
        step, as with one worker. History rows in action order, with `worker` and `start_s`
        when there is more than one worker; `sim_time_s` is each query's end. Not for
        `over_limit="penalty"`.

        With several objectives the same, in `envs.mo_subspaces`' terms: rewards and
        improvements against the centers and the known front of the draw (the batch's results
        join the front after all are judged); of the improving proposals on one center the
        highest `score` wins; winners replace their centers in subspace order, each only if it
        still improves on the centers moved so far (which matters for the hypervolume form
        only: a Tchebycheff center's value does not depend on the others)."""
        if self.config.over_limit == "penalty":
            raise ConfigError("step_batch does not support over_limit='penalty'")
        bench, graph, mo = self.benchmark, self.graph, self.mo
        centers, start_val = graph.centers, graph.val_acc.copy()
        proposals = []
        for action in actions:
            a = self._action(action)
            i = int(a[0])
            proposals.append((i, self.space.apply_edits(centers[i], a[1:].reshape(-1, 2))))
        self.steps += len(proposals)
        # one call: a benchmark served by evaluator actors scores the batch on all of them
        answers = bench.query_batch([beta for _, beta in proposals])
        rewards = np.zeros(len(proposals))
        ended = any(a is None for a in answers)
        made = [(j, i, beta, *answer, bench.query_metrics(beta)) for j, ((i, beta), answer)
                in enumerate(zip(proposals, answers)) if answer is not None]
        bench.clock.barrier()
        absolute = self.config.reward == "absolute"
        winners: dict[int, tuple] = {}
        known = []  # (raw, feasible) of the batch, for the front once all are judged
        for j, i, beta, q, _, metrics in made:
            feasible = bench.feasible(beta)
            if mo is None:
                improvement = q.val_acc - start_val[i]
                rewards[j] = q.val_acc if absolute else improvement
                better, score, raw = improvement > 0 and feasible, q.val_acc, None
            else:  # against the centers and the front of the time the actions were drawn
                raw = mo.raw(q.val_acc, metrics)
                rewards[j] = mo.reward(i, raw, feasible, absolute)
                score = mo.score(i, raw)
                better = feasible and mo.beats(i, score)
                known.append((raw, feasible))
            if (better and self.config.update_subspaces
                    and (i not in winners or score > winners[i][1])):
                winners[i] = (j, score, beta, q.val_acc, raw)
        for raw, feasible in known:
            mo.learn(raw, feasible)
        accepted = set()
        for i in sorted(winners):
            j, _, beta, val, raw = winners[i]
            if mo is not None:  # hypervolume: still more with the centers moved so far
                if not mo.improves(i, raw, True):
                    continue
                mo.replace(i, raw)
            graph.replace(i, beta, val)
            accepted.add(j)
        for j, i, beta, q, (worker, start, end), metrics in made:
            self.history.append(QueryRecord(
                step=len(self.history), subspace=i, arch=self.space.format(beta),
                val_acc=q.val_acc, reward=float(rewards[j]), accepted=j in accepted,
                cost_s=q.cost_s, sim_time_s=end, metrics=metrics,
                extra=(("worker", worker), ("start_s", start)) if bench.clock.workers > 1 else (),
            ))
        if ended:
            self._finish()
        return rewards, ended

    # -- checkpointing -------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything that decides the env's next steps, as plain picklable data: the graph,
        the budget clock, the history, the `np_random` state, the episode counters and the
        last finished episode. `set_state` on an env built from the same config continues
        exactly as this one would (RLlib checkpoints do not hold env state)."""
        last = None
        if self.last_finished is not None:
            graph, history, clock = self.last_finished
            last = (graph.get_state(), list(history), dict(clock))
        return {
            "config": self.config.to_dict(),
            "graph": None if self.graph is None else self.graph.get_state(),
            "clock": self.benchmark.clock.get_state(),
            "history": list(self.history),
            "steps": self.steps,
            "skipped_over_limit": self.skipped_over_limit,
            "skips_in_a_row": self._skips_in_a_row,
            "np_random": None if not self._seeded else self.np_random.bit_generator.state,
            "seeded": self._seeded,
            "episodes_finished": self.episodes_finished,
            "last_finished": last,
            **({} if self.mo is None else {"objectives": self.mo.get_state()}),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from `get_state()`'s output; the env must have the same config."""
        if EnvConfig.from_dict(state["config"]) != self.config:
            raise ConfigError(
                f"env state is of an env with config {state['config']}, not "
                f"{self.config.to_dict()}"
            )
        self.graph = None if state["graph"] is None else SubspaceGraph.from_state(state["graph"])
        self.benchmark.clock.set_state(state["clock"])
        self.history = self._records(state["history"])
        self.steps = int(state.get("steps", 0))  # absent in states saved by 0.1
        self.skipped_over_limit = int(state.get("skipped_over_limit", 0))
        self._skips_in_a_row = int(state.get("skips_in_a_row", 0))
        if state["np_random"] is not None:
            bits = getattr(np.random, state["np_random"]["bit_generator"])()
            bits.state = state["np_random"]
            self.np_random = np.random.Generator(bits)
        self._seeded = bool(state["seeded"])
        if self.mo is not None:
            self.mo.set_state(state["objectives"])
        self.episodes_finished = int(state["episodes_finished"])
        last = state["last_finished"]
        self.last_finished = (
            None if last is None
            else (SubspaceGraph.from_state(last[0]), self._records(last[1]), dict(last[2]))
        )

    def _records(self, rows) -> list[QueryRecord]:
        """History rows of a saved state as records (states saved by 0.2 hold positional
        tuples in `history_columns` order)."""
        return [r if isinstance(r, QueryRecord) else QueryRecord.from_row(r, self.history_columns)
                for r in rows]

    def observation(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The current observation and info (what the last `reset` or `step` returned, up to
        the step's own info fields): for a runner that continues a restored env."""
        return self._obs(), self._info()

    # -- helpers --------------------------------------------------------------------------------
    def _finish(self) -> None:
        self.episodes_finished += 1
        self.last_finished = (self.graph, self.history, {
            **self.benchmark.clock.state(), "steps": self.steps,
            "skipped_over_limit": self.skipped_over_limit,
        })

    def _obs(self) -> dict[str, np.ndarray]:
        g = self.graph
        obs = {
            "tokens": g.centers.copy(),
            "val_acc": (g.val_acc / self._acc_scale).astype(np.float32),
            "adj": g.adjacency.copy(),
            "op_mask": self._op_mask.copy(),
        }
        if self.mo is not None:
            obs[OBSERVATION_KEY] = self.mo.observation()
        return obs

    def _info(self, subspace=None, beta=None, val_acc=None, cost_s=0.0, accepted=False,
              queried=True) -> dict[str, Any]:
        g, clock = self.graph, self.benchmark.clock
        b = g.best()
        info = {
            "sim_time_s": clock.sim_time_s,
            "queries": clock.queries,
            "best_arch": self.space.format(g.centers[b]),
            "best_val_acc": float(g.val_acc[b]),
        }
        if subspace is not None:
            info.update(
                arch=self.space.format(beta), val_acc=val_acc, cost_s=cost_s,
                subspace=subspace, accepted=accepted, queried=queried,
            )
        return info

    def best(self) -> tuple[str, float]:
        """The answer: the best center of the graph (text form, validation accuracy)."""
        b = self.graph.best()
        return self.space.format(self.graph.centers[b]), float(self.graph.val_acc[b])
