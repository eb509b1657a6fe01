"""Several objectives at once: `--objectives`, each space's fixed normalisation, fronts.

`--objectives val_acc:max,latency_s:min` asks a search for 2 or 3 metrics at once: the reward
metric `val_acc` (validation accuracy, maximised; in any position) and any per-architecture
metric the benchmark serves (`Benchmark.metrics`), each with a direction, `min` or `max`.
`--limit` still applies, as feasibility: a front holds only architectures within the limits.

Normalisation: every objective is mapped to a minimised value that is 0 at its best and 1 at
its worst, with the fixed range (low, high) that the space declares for the metric
(`SpaceSpec.objectives`, from the data, never from what a run observed): `(v - low) / (high -
low)` for `min`, `(high - v) / (high - low)` for `max`. NAS-Bench-201's validation accuracy in
% becomes the error (100 - acc) / 100, its latency latency / the table's largest. The
hypervolume's reference point is 1 in every objective (`REFERENCE`). A space that declares no
normalisation refuses `--objectives`.

A search's front is the non-dominated set of the feasible architectures it visited, on
validation (`visited_front`); non-dominated sorting, hypervolume and IGD+ are moocore's
(LGPL-2.1-or-later, an optional dependency: `pip install 'dsmnas[mo]'`), imported only where
objectives are asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from dsmnas.envs.errors import ConfigError, require_extra

if TYPE_CHECKING:  # pandas is imported where a frame is made: the CLI's help needs none
    import pandas as pd

    from dsmnas.envs.benchmarks.base import Benchmark

REWARD = "val_acc"
"""The reward metric's name as an objective (the history's `val_acc` column)."""
DIRECTIONS = ("min", "max")
MIN_OBJECTIVES, MAX_OBJECTIVES = 2, 3
REFERENCE = 1.0
"""The hypervolume's reference point in every normalised objective."""
MO_FORMS = ("tchebycheff", "hypervolume")
"""How DSM-NAS scores a proposal with several objectives (`EnvConfig.mo_form`,
`envs.mo_subspaces`); the first is the default."""


def require_moocore() -> None:
    """--objectives needs moocore (the optional extra `mo`): ConfigError in one line if it is
    not installed, so that the CLI refuses before Ray starts."""
    require_extra("--objectives", ["moocore"], "mo")


def parse_objectives(value: Any) -> tuple[tuple[str, str], ...] | None:
    """(metric, direction) pairs from `"val_acc:max,latency_s:min"`, a mapping
    {metric: direction}, or a list of "metric:direction" items or pairs; None for None or "".
    ConfigError naming what is wrong: an item without a direction, a direction other than
    min or max, a metric twice, fewer than 2 or more than 3, val_acc missing or not max.
    Whether the space serves each metric is checked with its benchmark (`Objectives.build`)."""
    if value is None or value == "" or value == ():
        return None
    if isinstance(value, str):
        items: list = [t.strip() for t in value.split(",") if t.strip()]
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        items = list(value)
    pairs = []
    for item in items:
        if isinstance(item, str):
            metric, colon, direction = item.partition(":")
            if not colon:
                raise ConfigError(f"objective {item!r} has no direction: write METRIC:min or "
                                  f"METRIC:max (e.g. latency_s:min)")
        else:
            metric, direction = item
        metric, direction = str(metric).strip(), str(direction).strip()
        if direction not in DIRECTIONS:
            raise ConfigError(f"objective {metric}:{direction}: the direction must be min or "
                              f"max")
        pairs.append((metric, direction))
    names = [m for m, _ in pairs]
    twice = sorted({m for m in names if names.count(m) > 1})
    if twice:
        raise ConfigError(f"objectives name {', '.join(twice)} more than once")
    if not MIN_OBJECTIVES <= len(pairs) <= MAX_OBJECTIVES:
        raise ConfigError(
            f"--objectives takes {MIN_OBJECTIVES} or {MAX_OBJECTIVES} objectives, got "
            f"{len(pairs)} ({', '.join(f'{m}:{d}' for m, d in pairs)}); e.g. "
            f"val_acc:max,latency_s:min")
    if (REWARD, "max") not in pairs:
        raise ConfigError(
            f"objectives must include the reward metric as {REWARD}:max (validation accuracy, "
            f"maximised), got {', '.join(f'{m}:{d}' for m, d in pairs)}")
    return tuple(pairs)


def objectives_text(pairs: Sequence[tuple[str, str]]) -> str:
    """"val_acc:max,latency_s:min": the flag's form of (metric, direction) pairs."""
    return ",".join(f"{m}:{d}" for m, d in pairs)


@dataclass(frozen=True)
class ObjectiveScale:
    """What a space declares for `--objectives` (`SpaceSpec.objectives`, given its built
    benchmark): the fixed range of each metric that may be an objective, and where the data
    holds every architecture, every architecture's values (for the true front)."""

    bounds: Mapping[str, tuple[float, float]]
    """metric -> (low, high): the range normalised to [0, 1] (val_acc included)."""
    every: Callable[[], Mapping[str, np.ndarray]] | None = None
    """Every architecture's value of each metric (val_acc: validation), one array each, in
    one order; None where the space is not a complete table (no IGD+)."""


@dataclass(frozen=True)
class Objectives:
    """The objectives of a search, with their fixed normalisation (small and picklable: it
    travels in a comparison's plan)."""

    names: tuple[str, ...]
    directions: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def build(cls, pairs: Sequence[tuple[str, str]], benchmark: Benchmark,
              scale: ObjectiveScale | None, space: str) -> "Objectives":
        """The objectives `pairs` on `benchmark`; ConfigError for a space that declares no
        normalisation or a metric it does not serve."""
        if scale is None:
            raise ConfigError(f"the {space} space declares no normalisation for --objectives "
                              f"(SpaceSpec.objectives); it cannot search several objectives")
        served = [REWARD, *[m for m in benchmark.metrics if m in scale.bounds]]
        for metric, _ in pairs:
            if metric not in served:
                raise ConfigError(f"unknown objective {metric!r} for {benchmark.source}; "
                                  f"allowed: {', '.join(served)}")
        bounds = [tuple(map(float, scale.bounds[m])) for m, _ in pairs]
        for (metric, _), (low, high) in zip(pairs, bounds):
            if not (math.isfinite(low) and math.isfinite(high) and high > low):
                raise ConfigError(f"the {space} space declares the range ({low}, {high}) for "
                                  f"{metric}: it must be finite with high > low")
        return cls(tuple(m for m, _ in pairs), tuple(d for _, d in pairs),
                   tuple(b[0] for b in bounds), tuple(b[1] for b in bounds))

    @property
    def metrics(self) -> tuple[str, ...]:
        """The objectives other than the reward: metric columns of the histories."""
        return tuple(n for n in self.names if n != REWARD)

    @property
    def reference(self) -> np.ndarray:
        return np.full(len(self.names), REFERENCE)

    def text(self) -> str:
        return objectives_text(zip(self.names, self.directions))

    def raw(self, val_acc: float, metrics) -> np.ndarray:
        """An architecture's raw objective values, from its validation accuracy and its
        metrics (a mapping, or `QueryRecord.metrics`' (name, value) pairs)."""
        metrics = dict(metrics)
        return np.array([val_acc if n == REWARD else float(metrics[n]) for n in self.names])

    def normalise(self, values) -> np.ndarray:
        """(n, objectives) raw values -> minimised values, 0 best and 1 worst."""
        v = np.asarray(values, dtype=float).reshape(-1, len(self.names))
        low, high = np.array(self.low), np.array(self.high)
        up = np.array([d == "max" for d in self.directions])
        return np.where(up, high - v, v - low) / (high - low)

    def hypervolume(self, values) -> float:
        """Hypervolume of raw `values` (any points; dominated ones add nothing) in the
        normalised space, reference `REFERENCE`; 0 for no points."""
        return normalised_hypervolume(self.normalise(values))

    def nondominated(self, values) -> np.ndarray:
        """Boolean mask of the raw `values` that no other dominates (of equal points, the
        first only)."""
        import moocore

        points = self.normalise(values)
        if not len(points):
            return np.zeros(0, dtype=bool)
        return np.asarray(moocore.is_nondominated(points, keep_weakly=False), dtype=bool)

    def igd_plus(self, values, true_front) -> float:
        """IGD+ of raw `values` to the raw `true_front` (normalised, 0: it reaches it)."""
        import moocore

        return float(moocore.igd_plus(self.normalise(values), ref=self.normalise(true_front)))


def normalised_hypervolume(points: np.ndarray) -> float:
    """Hypervolume of normalised points (n, objectives) (`Objectives.normalise`), reference
    `REFERENCE` in each; points beyond it add nothing; 0 for none."""
    import moocore

    points = points[np.all(points < REFERENCE, axis=1)]
    if not len(points):
        return 0.0
    return float(moocore.hypervolume(points, ref=np.full(points.shape[1], REFERENCE)))


def within_limits(metrics: Mapping[str, float], limits: Mapping[str, float] | None) -> bool:
    """Whether one query's recorded metrics are within every limit (`feasible_rows` for a
    single record)."""
    return all(metrics[m] <= v for m, v in (limits or {}).items())


def feasible_rows(history: pd.DataFrame, limits: Mapping[str, float] | None) -> np.ndarray:
    """Boolean mask of the history rows within every limit (limited metrics are history
    columns)."""
    mask = np.ones(len(history), dtype=bool)
    for metric, value in (limits or {}).items():
        mask &= history[metric].to_numpy(float) <= float(value)
    return mask


def visited_front(history: pd.DataFrame, objectives: Objectives,
                  limits: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The front of a history: its feasible architectures that no other dominates, on
    validation, as a frame `arch` + one column per objective (sorted by the first). An
    architecture queried more than once (a noisy benchmark answers each query anew) counts
    with its best validation answer."""
    import pandas as pd

    columns = ["arch", *objectives.names]
    rows = history.loc[feasible_rows(history, limits), columns]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.sort_values(REWARD, ascending=False, kind="stable").drop_duplicates("arch")
    rows = rows.sort_index()  # the first visited of equal points is kept
    front = rows[objectives.nondominated(rows[list(objectives.names)].to_numpy(float))]
    first = objectives.names[0]
    ascending = objectives.directions[0] == "min"
    return front.sort_values(first, ascending=ascending, kind="stable").reset_index(drop=True)


def anytime_hypervolume(history: pd.DataFrame, objectives: Objectives,
                        limits: Mapping[str, float] | None, grid: np.ndarray,
                        x: str = "sim_time_s") -> np.ndarray:
    """Hypervolume (validation) of the feasible queries made up to each grid point of `x`
    (simulated seconds or `"queries"`); 0 before the first."""
    if history.empty:
        return np.zeros(len(grid))
    h = history.sort_values("sim_time_s", kind="stable")
    xs = (np.arange(1, len(h) + 1, dtype=float) if x == "queries"
          else h["sim_time_s"].to_numpy(float))
    ok = feasible_rows(h, limits)
    values = h[list(objectives.names)].to_numpy(float)
    counts = np.searchsorted(xs, grid, side="right")
    out, cache = np.zeros(len(grid)), {}
    for i, n in enumerate(counts):
        if n not in cache:
            cache[n] = objectives.hypervolume(values[:n][ok[:n]])
        out[i] = cache[n]
    return out


def true_front(objectives: Objectives, scale: ObjectiveScale,
               limits: Mapping[str, float] | None = None) -> np.ndarray | None:
    """The raw values of the true front, from every architecture of a complete table within
    the limits; None when the space has no complete table."""
    if scale.every is None:
        return None
    every = scale.every()
    values = np.column_stack([np.asarray(every[n], float) for n in objectives.names])
    ok = np.all(np.isfinite(values), axis=1)
    for metric, limit in (limits or {}).items():
        ok &= np.asarray(every[metric], float) <= float(limit)
    values = values[ok]
    return values[objectives.nondominated(values)]


FIGURES = ("hypervolume_val", "hypervolume_test")
"""A multi-objective run's figures in runs.csv; `igd_plus_val` too where the space knows its
true front (`figure_names`)."""
IGD_PLUS = "igd_plus_val"


def figure_names(scale: ObjectiveScale | None) -> tuple[str, ...]:
    """The runs.csv columns of a multi-objective run in a space of `scale`."""
    return FIGURES + ((IGD_PLUS,) if scale is not None and scale.every is not None else ())


def search_front(history: pd.DataFrame, benchmark: Benchmark
                 ) -> tuple[pd.DataFrame, dict[str, float]]:
    """A finished search's front (`visited_front` of its history, on validation) and its
    figures: `hypervolume_val`; `hypervolume_test`, the front's architectures re-scored with
    the searched dataset's test accuracy (`benchmark.report`, read here, after the search;
    NaN where the data has none); `igd_plus_val` to the true front where the space knows it."""
    objectives, scale = benchmark.objectives, benchmark.objective_scale
    front = visited_front(history, objectives, benchmark.limits)
    values = front[list(objectives.names)].to_numpy(float)
    figures = {"hypervolume_val": objectives.hypervolume(values)}
    test = values.copy()
    column = objectives.names.index(REWARD)
    test[:, column] = [benchmark.report(benchmark.space.parse(arch)).get(benchmark.dataset,
                                                                          math.nan)
                       for arch in front["arch"]]
    figures["hypervolume_test"] = (objectives.hypervolume(test)
                                   if len(test) and np.isfinite(test[:, column]).all()
                                   else math.nan)
    if IGD_PLUS in figure_names(scale):
        truth = true_front(objectives, scale, benchmark.limits)
        figures[IGD_PLUS] = objectives.igd_plus(values, truth) if len(values) else math.nan
    return front, figures
