"""The methods' fronts in a comparison with `--objectives`: `fronts.png`, attainment surfaces.

Pure functions of the comparison folder's files, no Ray (`experiments.report_objectives` calls
them): each finished run's front, `fronts/<method>-<seed>.csv` (feasible, on validation, the
benchmark's values), and where the space knows its true front, `true_front.csv` (every
architecture within the limits that no other dominates; written by `dsmnas compare`).

Per method, `fronts.png` draws the median (50 %) attainment surface of its runs' fronts, the
boundary of what at least half of its runs reached, and shades between the 25 % and 75 %
surfaces (moocore's empirical attainment function, `moocore.eaf`, on the normalised objectives;
drawn in the objectives' raw units). A run whose front is empty (no feasible architecture)
counts, attaining nothing. The true front is drawn as black points on a dashed staircase.

Two objectives: one panel, the reward (validation accuracy, %) up and the other objective
across. Three objectives: three panels, one per pair of objectives, each the attainment
surfaces of the runs' fronts projected onto the pair (what each run reached in those two
objectives, whatever the third), and the true front projected likewise (the pair's own true
front).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dsmnas.envs.objectives import REFERENCE, REWARD, Objectives
from dsmnas.experiments import report

FRONTS_PNG = "fronts.png"
TRUE_FRONT_CSV = "true_front.csv"
"""The true front's raw values (one column per objective), where the space knows it."""
MEDIAN, BAND = 50, (25, 75)
"""The attainment surface drawn as a line, and the pair whose surfaces bound the shading."""
PERCENTILES = (BAND[0], MEDIAN, BAND[1])


def load_fronts(runs: pd.DataFrame, folder: str | Path
                ) -> dict[tuple[str, int], pd.DataFrame]:
    """The fronts of the finished runs, read from `<folder>/<method>-<seed>.csv`."""
    out = {}
    for r in report.finished(runs).itertuples(index=False):
        path = Path(folder) / report.history_name(r.method, r.seed)
        if path.exists():
            out[(r.method, int(r.seed))] = pd.read_csv(path)
    return out


def write_true_front(values: np.ndarray | Sequence | None, objectives: Objectives,
                     folder: str | Path) -> Path | None:
    """`<folder>/true_front.csv` of the true front's raw `values` (rows of the objectives),
    sorted by the first objective as the runs' fronts are; nothing (None) for None."""
    if values is None:
        return None
    path = Path(folder) / TRUE_FRONT_CSV
    frame = pd.DataFrame(np.asarray(values, float).reshape(-1, len(objectives.names)),
                         columns=list(objectives.names))
    frame = frame.sort_values(objectives.names[0], ascending=objectives.directions[0] == "min",
                              kind="stable")
    frame.to_csv(path, index=False)
    return path


def load_true_front(folder: str | Path, objectives: Objectives) -> np.ndarray | None:
    """The raw values of `<folder>/true_front.csv` in the objectives' order; None without one."""
    path = Path(folder) / TRUE_FRONT_CSV
    if not path.exists():
        return None
    return pd.read_csv(path)[list(objectives.names)].to_numpy(float)


def raw_values(objectives: Objectives, normalised: np.ndarray,
               columns: Sequence[int] | None = None) -> np.ndarray:
    """Normalised (minimised) values back in the objectives' raw units (`Objectives.normalise`'s
    inverse); `columns`: which objectives the columns of `normalised` are (default all)."""
    columns = range(len(objectives.names)) if columns is None else columns
    v = np.asarray(normalised, float).reshape(-1, len(columns))
    out = np.empty_like(v)
    for k, i in enumerate(columns):
        low, high = objectives.low[i], objectives.high[i]
        up = objectives.directions[i] == "max"
        out[:, k] = high - v[:, k] * (high - low) if up else low + v[:, k] * (high - low)
    return out


def attainment_surfaces(fronts: Sequence[pd.DataFrame], objectives: Objectives,
                        pair: tuple[int, int] = (0, 1),
                        percentiles: Sequence[float] = PERCENTILES) -> dict[float, np.ndarray]:
    """Percentile -> the attainment surface of the runs' `fronts` in the objectives `pair`
    (normalised: minimised, 0 best), its points sorted by the first of the pair: the boundary
    of the points that at least that percentage of the runs weakly dominate (moocore.eaf). A
    run with an empty front counts and attains nothing."""
    import moocore

    points, sets = [], []
    for k, front in enumerate(fronts, 1):
        values = front[list(objectives.names)].to_numpy(float)
        values = (objectives.normalise(values)[:, list(pair)] if len(values)
                  else np.full((1, 2), np.inf))  # counts as a run, attains nothing
        points.append(values)
        sets.append(np.full(len(values), k))
    if not points:
        return {p: np.zeros((0, 2)) for p in percentiles}
    points, sets = np.vstack(points), np.concatenate(sets)
    finite = np.isfinite(points).all(axis=1)
    if not finite.any():
        return {p: np.zeros((0, 2)) for p in percentiles}
    # an empty front's stand-in, beyond every point, keeps the count of runs; a surface point
    # that needs it is at least as far in both objectives and is dropped
    beyond = points[finite].max() + REFERENCE
    points[~finite] = beyond
    eaf = moocore.eaf(points, sets, percentiles=list(percentiles))
    out = {}
    for p in percentiles:
        surface = eaf[np.isclose(eaf[:, 2], p), :2]
        surface = surface[(surface < beyond).all(axis=1)]
        out[p] = surface[np.lexsort((-surface[:, 1], surface[:, 0]))]
    return out


def staircase(surface: np.ndarray, worst: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) to draw a normalised attainment surface with `drawstyle="steps-post"`: from
    `worst` down to its first point, across and down through each point, out to `worst`."""
    if not len(surface):
        return np.zeros(0), np.zeros(0)
    x, y = surface[:, 0], surface[:, 1]
    return (np.concatenate([[x[0]], x, [worst]]), np.concatenate([[worst], y, [y[-1]]]))


def surface_at(surface: np.ndarray, x: np.ndarray, worst: float) -> np.ndarray:
    """The normalised surface's height at each `x` (its best value among the points at or
    left of x; `worst` left of all of them)."""
    if not len(surface):
        return np.full(len(x), worst)
    best = np.minimum.accumulate(surface[:, 1])
    idx = np.searchsorted(surface[:, 0], x, side="right") - 1
    return np.where(idx >= 0, best[np.clip(idx, 0, None)], worst)


def panels(objectives: Objectives) -> list[tuple[int, int]]:
    """(x, y) objective indices of each panel: the reward up against each other objective,
    then, with three objectives, the two others against each other."""
    r = objectives.names.index(REWARD)
    others = [i for i in range(len(objectives.names)) if i != r]
    return [(i, r) for i in others] + list(itertools.combinations(others, 2))


def axis_label(objectives: Objectives, i: int) -> str:
    """The metric, its unit where the name does not carry it, and its direction."""
    name, direction = objectives.names[i], objectives.directions[i]
    if name == REWARD:
        # NAS-Bench-201, NAS-Bench-Graph, MobileNet: accuracy in % over (0, 100)
        percent = (objectives.low[i], objectives.high[i]) == (0.0, 100.0)
        name = "validation accuracy, val_acc" + (" (%)" if percent else "")
    return f"{name}: {'higher' if direction == 'max' else 'lower'} is better"


def plot_fronts(fronts: Mapping[tuple[str, int], pd.DataFrame], objectives: Objectives,
                path: str | Path, true_front: np.ndarray | None = None,
                methods: Sequence[str] = ()) -> Path:
    """`fronts.png`: per method, its runs' median attainment surface (line) and the 25-75 %
    band (shaded), one panel per pair of objectives (`panels`), the true front in black
    where it is given; in the objectives' raw units."""
    import matplotlib.pyplot as plt

    import moocore

    by_method: dict[str, list[pd.DataFrame]] = {}
    for (method, _seed), front in fronts.items():
        by_method.setdefault(method, []).append(front)
    # beyond every value drawn: the staircases run off the axes to it
    drawn = [objectives.normalise(f[list(objectives.names)].to_numpy(float))
             for f in fronts.values()]
    if true_front is not None:
        drawn.append(objectives.normalise(true_front))
    worst = max([REFERENCE, *[float(d.max()) for d in drawn if d.size]]) + REFERENCE
    colors = report._colors([*methods, *[m for m in by_method if m not in methods]])
    pairs = panels(objectives)
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.5 * len(pairs), 4.8),
                             layout="constrained", squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        seen = []  # the normalised points drawn, for the axis limits
        for method, color in colors.items():
            if method not in by_method:
                continue
            surfaces = attainment_surfaces(by_method[method], objectives, pair)
            low, high = surfaces[BAND[0]], surfaces[BAND[1]]
            xs = np.unique(np.concatenate([low[:, 0], high[:, 0], [worst]]))
            band = np.column_stack([xs, surface_at(low, xs, worst)])
            top = raw_values(objectives, np.column_stack([xs, surface_at(high, xs, worst)]),
                             pair)
            band = raw_values(objectives, band, pair)
            ax.fill_between(band[:, 0], band[:, 1], top[:, 1], step="post", color=color,
                            alpha=0.15, lw=0)
            x, y = staircase(surfaces[MEDIAN], worst)
            line = raw_values(objectives, np.column_stack([x, y]), pair)
            ax.plot(line[:, 0], line[:, 1], drawstyle="steps-post", color=color, lw=1.8,
                    label=f"{method} (n={len(by_method[method])})")
            seen += [surfaces[p] for p in (*BAND, MEDIAN)]
        if true_front is not None and len(true_front):
            values = objectives.normalise(true_front)[:, list(pair)]
            values = values[np.asarray(moocore.is_nondominated(values, keep_weakly=False))]
            values = values[np.argsort(values[:, 0], kind="stable")]
            x, y = staircase(values, worst)
            line = raw_values(objectives, np.column_stack([x, y]), pair)
            ax.plot(line[:, 0], line[:, 1], drawstyle="steps-post", color="black", lw=1,
                    ls="--", label=f"true front ({len(values)})")
            dots = raw_values(objectives, values, pair)
            ax.plot(dots[:, 0], dots[:, 1], "k.", ms=4)
            seen.append(values)
        _limits(ax, objectives, pair, seen)
        ax.set_xlabel(axis_label(objectives, pair[0]))
        ax.set_ylabel(axis_label(objectives, pair[1]))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(f"{objectives.text()}: the runs' fronts on validation\n"
                 "median attainment surface over seeds per method, shaded from 25 % to 75 %",
                 fontsize="medium")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _limits(ax, objectives: Objectives, pair: tuple[int, int],
            seen: Sequence[np.ndarray]) -> None:
    """Axis limits around the surfaces' points (the staircases' ends run off the axes)."""
    points = [s for s in seen if len(s)]
    if not points:
        return
    raw = raw_values(objectives, np.vstack(points), pair)
    for k, set_lim in enumerate((ax.set_xlim, ax.set_ylim)):
        low, high = raw[:, k].min(), raw[:, k].max()
        pad = 0.05 * (high - low) or 0.05 * (abs(high) or 1.0)
        set_lim(low - pad, high + pad)
