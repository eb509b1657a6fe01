"""DSM-NAS with several objectives (`--objectives`): how the env scores and keeps centers.

The design, stated before it was measured (README, docs/manual/objectives.md):

- **Each subspace holds one trade-off.** Center i has its own weight vector w_i over the m
  normalised objectives f (each minimised, 0 best and 1 worst, with the space's fixed range:
  `envs.objectives`). For m = 2, w_i = (1 - l_i, l_i) with l_i = (i + 0.5) / K: K directions
  evenly spread between the first objective and the second, none of them ignoring one. For
  m = 3 the K points u = (i + 0.5) / K, v = frac(0.5 + i / golden ratio) of the unit
  square, mapped to the simplex by (1 - sqrt(u), sqrt(u) (1 - v), sqrt(u) v) (the uniform
  map; a Kronecker sequence, so the K vectors are spread and fixed for a given K).
- **`tchebycheff` (the default, `dsm`)**: an architecture's value for center i is its
  augmented Tchebycheff value g_i(x) = max_j w_ij f_j(x) + rho sum_j w_ij f_j(x), rho = 0.05,
  with the ideal point at the normalisation's 0 (fixed, never from a run). The reward keeps
  DSM-NAS's meaning, the improvement of beta over the center it edited:
  R(beta | alpha_i) = 100 (g_i(alpha_i) - g_i(beta)), in the same points as the single-
  objective reward when the accuracy weighs most; beta replaces alpha_i when R > 0 and beta
  is within the limits, so each center only ever gets better on its own trade-off.
  `reward="absolute"`: 100 (1 - g_i(beta)).
- **`hypervolume` (the variant `dsm-hv`)**: the reward is the hypervolume (under the space's
  fixed reference point, times 100) that beta adds to the front of the feasible
  architectures known so far (the initial centers and every query), 0 for a dominated or
  infeasible beta; beta replaces alpha_i when it is within the limits and the K centers with
  beta in place of alpha_i cover more hypervolume than with alpha_i (centers replaced by
  hypervolume contribution). `reward="absolute"`: 100 times the front's hypervolume with beta.
- **The observation carries the objectives**: `objectives` (K, 2m) float32, each center's
  normalised objectives (clipped to [0, 1]), then its weight vector; the subspace graph keeps its
  weaker -> better edges by validation accuracy. The env's reward stays a scalar and each
  step's `info["objectives"]` holds beta's raw objective values (as MO-Gymnasium's
  `vector_reward` does), so other scalarisations can be computed from the same episodes.

Hypervolume and non-dominance are moocore's (`envs.objectives`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from dsmnas.envs.objectives import MO_FORMS, Objectives, normalised_hypervolume

RHO = 0.05
"""The augmented Tchebycheff term's weight."""
SCALE = 100.0
"""Rewards in points: a normalised value of 0.01 (one accuracy point, error / 100) is 1."""
OBSERVATION_KEY = "objectives"


def center_weights(K: int, m: int) -> np.ndarray:
    """The K weight vectors (K, m) of the centers (module docstring), each summing to 1."""
    u = (np.arange(K) + 0.5) / K
    if m == 2:
        return np.column_stack([1.0 - u, u])
    if m == 3:
        v = np.mod(0.5 + np.arange(K) * (math.sqrt(5.0) - 1.0) / 2.0, 1.0)
        r = np.sqrt(u)
        return np.column_stack([1.0 - r, r * (1.0 - v), r * v])
    raise ValueError(f"center_weights: m must be 2 or 3, got {m}")


def tchebycheff(f: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Augmented Tchebycheff values of normalised points `f` (..., m) under weights `w`."""
    wf = np.asarray(w) * np.asarray(f)
    return wf.max(axis=-1) + RHO * wf.sum(axis=-1)


class SubspaceObjectives:
    """The objectives of one DSM-NAS search's K centers, and its known front (`hypervolume`).

    The env calls `start` after its reset (the K initial centers' raw values), `judge` for
    each queried beta (reward, whether it replaces the center), and `replace` when it does.
    Searches over several workers use `judge`'s parts (`envs.workers`, `DSMNASEnv.step_batch`):
    `reward` and `improves` against the centers and front of the time the action was drawn,
    `learn` once the result is known, `score` (and `beats`) to pick one of several proposals
    on one center.
    """

    def __init__(self, objectives: Objectives, K: int, form: str | None):
        self.objectives = objectives
        self.form = form or MO_FORMS[0]
        self.weights = center_weights(K, len(objectives.names))
        self._f = np.zeros((K, len(objectives.names)))
        self._front = np.zeros((0, len(objectives.names)))

    def raw(self, val_acc: float, metrics) -> np.ndarray:
        """The raw objective vector of an architecture (`Objectives.raw`), from its validation
        accuracy and its benchmark metrics (`Benchmark.query_metrics`)."""
        return self.objectives.raw(val_acc, metrics)

    def start(self, raw: np.ndarray, feasible: np.ndarray) -> None:
        """The K initial centers' raw values (K, m) and which are within the limits."""
        self._f = self.objectives.normalise(raw)
        self._front = np.zeros((0, self._f.shape[1]))
        for f, ok in zip(self._f, feasible):
            if ok:
                self._add(f)

    def _with(self, f: np.ndarray) -> np.ndarray:
        """The known front with the feasible point `f` added."""
        if len(self._front) and np.any(np.all(self._front <= f, axis=1)):
            return self._front  # weakly dominated: the front is unchanged
        keep = ~np.all(f <= self._front, axis=1)
        return np.vstack([self._front[keep], f])

    def _add(self, f: np.ndarray) -> None:
        """Add a feasible point to the known front (hypervolume form only)."""
        if self.form == "hypervolume":
            self._front = self._with(f)

    def reward(self, i: int, raw: np.ndarray, feasible: bool, absolute: bool) -> float:
        """The reward of a queried beta with raw values `raw` proposed in subspace i, against
        the centers and the known front as they are now (neither changes)."""
        f = self.objectives.normalise(raw)[0]
        if self.form == "tchebycheff":
            w = self.weights[i]
            if absolute:
                return SCALE * (1.0 - float(tchebycheff(f, w)))
            return SCALE * float(tchebycheff(self._f[i], w) - tchebycheff(f, w))
        before = normalised_hypervolume(self._front)
        after = normalised_hypervolume(self._with(f)) if feasible else before
        return SCALE * (after if absolute else after - before)

    def score(self, i: int, raw: np.ndarray) -> float:
        """How good beta would be as center i, higher better: minus its Tchebycheff value
        under center i's weights, or the centers' hypervolume with beta in place of center i
        (of several proposals on one center in a batch, the highest replaces it)."""
        f = self.objectives.normalise(raw)[0]
        if self.form == "tchebycheff":
            return -float(tchebycheff(f, self.weights[i]))
        swapped = self._f.copy()
        swapped[i] = f
        return normalised_hypervolume(swapped)

    def beats(self, i: int, score: float) -> bool:
        """Whether a `score` for center i is higher than center i's own, as the centers are
        now."""
        if self.form == "tchebycheff":
            return score > -float(tchebycheff(self._f[i], self.weights[i]))
        return score > normalised_hypervolume(self._f)

    def improves(self, i: int, raw: np.ndarray, feasible: bool) -> bool:
        """Whether beta may replace center i as the centers are now (before
        `update_subspaces`): it is within the limits and scores higher than center i."""
        return feasible and self.beats(i, self.score(i, raw))

    def learn(self, raw: np.ndarray, feasible: bool) -> None:
        """Add a queried architecture to the known front (hypervolume form; feasible only)."""
        if feasible:
            self._add(self.objectives.normalise(raw)[0])

    def judge(self, i: int, raw: np.ndarray, feasible: bool, absolute: bool
              ) -> tuple[float, bool]:
        """(reward, whether beta may replace center i) of a queried beta with raw values
        `raw` proposed in subspace i, which then joins the known front (one step of `dsm`)."""
        reward, better = self.reward(i, raw, feasible, absolute), self.improves(i, raw, feasible)
        self.learn(raw, feasible)
        return reward, better

    def replace(self, i: int, raw: np.ndarray) -> None:
        self._f[i] = self.objectives.normalise(raw)[0]

    def observation(self) -> np.ndarray:
        """(K, 2m) float32: each center's normalised objectives (clipped to [0, 1]: a value
        outside the space's declared range reads as its bound), then its weights."""
        return np.hstack([np.clip(self._f, 0.0, 1.0), self.weights]).astype(np.float32)

    def info(self, raw: np.ndarray) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.objectives.names, raw)}

    def get_state(self) -> dict[str, Any]:
        return {"f": self._f.copy(), "front": self._front.copy()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._f = np.array(state["f"], dtype=float)
        self._front = np.array(state["front"], dtype=float).reshape(-1, self._f.shape[1])
