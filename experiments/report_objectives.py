"""Reports of a comparison with `--objectives`: hypervolume ranking and anytime hypervolume.

Pure functions of pandas frames, no Ray, as `experiments.report`, which calls them when the
runs have objectives. A multi-objective runs table has, besides a comparison's columns,
`hypervolume_val`, `hypervolume_test` (the front re-scored with test accuracy, reports only)
and, where the space knows its true front, `igd_plus_val` (`envs.objectives`).

- `summarize`: per method, mean and sample std of each figure, and Welch's p-value against
  the reference method (`dsm` by default; when it is not compared, the method with the
  highest mean validation hypervolume);
- `markdown`: the methods ranked by mean validation hypervolume;
- `plot_anytime_hypervolume`: validation hypervolume of the feasible queries made so far
  against simulated time (queries when the budget counts queries), mean ± std over seeds;
- `experiments.report_fronts.plot_fronts`: the methods' median attainment surfaces and the
  true front (`fronts.png`);
- `write_report`: `experiments.report.write_report` with all of these.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dsmnas.envs.objectives import FIGURES, IGD_PLUS, Objectives, anytime_hypervolume
from dsmnas.experiments import report

HYPERVOLUME_PNG = "hypervolume_val.png"


def figure_columns(runs: pd.DataFrame) -> list[str]:
    """The objectives' figure columns the runs have."""
    return [c for c in (*FIGURES, IGD_PLUS) if c in runs]


def comparison_reference(summary: pd.DataFrame, reference: str) -> str:
    """`reference` when it was compared, else the method with the highest mean validation
    hypervolume (the first on a tie)."""
    if reference in set(summary["method"]) or summary.empty:
        return reference
    ranked = summary.dropna(subset=["hypervolume_val_mean"])
    if ranked.empty:
        return reference
    return str(ranked.loc[ranked["hypervolume_val_mean"].idxmax(), "method"])


def summarize(runs: pd.DataFrame, reference: str = "dsm") -> pd.DataFrame:
    """One row per method: `<figure>_mean`, `<figure>_std` and `<figure>_p` (Welch, against
    `comparison_reference`; NaN for the reference itself) of each figure column."""
    ok = report.finished(runs)
    columns = figure_columns(runs)
    rows = []
    for method in report.method_order(runs):
        done = ok[ok["method"] == method]
        row = {"method": method}
        for col in columns:
            values = done[col].astype(float)
            row[f"{col}_mean"] = values.mean() if len(values) else math.nan
            row[f"{col}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    summary = pd.DataFrame(rows, columns=["method", *[f"{c}_{s}" for c in columns
                                                      for s in ("mean", "std")]])
    ref = comparison_reference(summary, reference)
    mine = ok[ok["method"] == ref]
    for col in columns:
        summary[f"{col}_p"] = [
            math.nan if m == ref else report.welch_p(ok.loc[ok["method"] == m, col], mine[col])
            for m in summary["method"]]
    return summary


def markdown(summary: pd.DataFrame, objectives: Objectives, reference: str = "dsm") -> list[str]:
    """The summary's lines on the objectives: methods ranked by mean validation hypervolume,
    each figure as mean ± std and its Welch p-value."""
    ref = comparison_reference(summary, reference)
    columns = [c for c in (*FIGURES, IGD_PLUS) if f"{c}_mean" in summary]
    ranked = summary.sort_values("hypervolume_val_mean", ascending=False, kind="stable",
                                 na_position="last")
    header = ["rank", "method"]
    for c in columns:
        header += [report.FIGURE_NAMES[c], "p"]
    rows = []
    for rank, r in enumerate(ranked.to_dict("records"), 1):
        cells = [str(rank), r["method"]]
        for c in columns:
            cells += [report._mean_std(r[f"{c}_mean"], r[f"{c}_std"], 4), report._p(r[f"{c}_p"])]
        rows.append(cells)
    bounds = ", ".join(
        f"{n}:{d} over ({lo:g}, {hi:g})"
        for n, d, lo, hi in zip(objectives.names, objectives.directions, objectives.low,
                                objectives.high))
    lines = [f"## Objectives: {objectives.text()}", ""]
    lines += report._table(header, rows)
    lines += [
        "",
        "Ranked by mean hypervolume of the front on validation (the non-dominated feasible "
        "architectures a run visited), mean ± sample std (ddof = 1) over the runs that "
        f"finished; p: Welch's t-test against {ref} (two-sided). Each objective is "
        f"normalised with the space's fixed range ({bounds}) to 0 at its best and 1 at its "
        "worst; reference point 1 in each. HV test: the front's architectures re-scored "
        "with test accuracy after the search (– where the data has none)"
        + ("; IGD+ val: distance to the true front of every architecture (lower is better)."
           if IGD_PLUS in columns else "."),
        "",
    ]
    return lines


def anytime_curves(histories: Mapping[tuple[str, int], pd.DataFrame], objectives: Objectives,
                   limits: Mapping[str, float] | None, points: int = 100,
                   x: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The common grid of `x` (`report.anytime_axis`) and, per method, an array (runs x
    grid) of the validation hypervolume so far."""
    x = x or report.anytime_axis(histories)
    end = max((report._axis(h, x).max() for h in histories.values() if not h.empty),
              default=0.0)
    grid = np.linspace(0.0, float(end), points)
    curves: dict[str, list[np.ndarray]] = {}
    for (method, _seed), h in histories.items():
        curves.setdefault(method, []).append(anytime_hypervolume(h, objectives, limits, grid, x))
    return grid, {m: np.vstack(c) for m, c in curves.items()}


def plot_anytime_hypervolume(histories: Mapping[tuple[str, int], pd.DataFrame],
                             objectives: Objectives, limits: Mapping[str, float] | None,
                             path: str | Path, methods: Sequence[str] = ()) -> Path:
    """Validation hypervolume so far against simulated time (queries for a budget of
    queries): mean line and ±1 std band per method."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import StrMethodFormatter

    x = report.anytime_axis(histories)
    grid, curves = anytime_curves(histories, objectives, limits, x=x)
    colors = report._colors([*methods, *[m for m in curves if m not in methods]])
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for method, color in colors.items():
        if method not in curves:
            continue
        c = curves[method]
        mean = c.mean(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            std = c.std(axis=0, ddof=1) if len(c) > 1 else np.zeros_like(mean)
        ax.plot(grid, mean, color=color, lw=1.8, label=f"{method} (n={len(c)})")
        ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    ax.set_xlabel("simulated search time (s)" if x == "sim_time_s" else "queries")
    ax.set_ylabel("hypervolume so far (validation)")
    ax.set_title(f"{objectives.text()}: hypervolume (mean ± 1 std over seeds)")
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(runs: pd.DataFrame, histories: Mapping[tuple[str, int], pd.DataFrame],
                 out_dir: str | Path, objectives: Objectives,
                 limits: Mapping[str, float] | None = None, reference: str = "dsm",
                 title: str = "Comparison", notes: Sequence[str] = (),
                 fronts: Mapping[tuple[str, int], pd.DataFrame] | None = None,
                 true_front: np.ndarray | None = None) -> list[Path]:
    """A comparison's report (`experiments.report.write_report`) led by the hypervolume
    ranking, the figures in summary.csv, `hypervolume_val.png` and, given the runs' `fronts`
    (`report_fronts.load_fronts`), `fronts.png` with the `true_front` (raw values) where
    known; returns the paths."""
    from dsmnas.experiments import report_fronts

    figures = summarize(runs, reference)
    paths = report.write_report(runs, histories, out_dir, reference, title, notes,
                                lead=markdown(figures, objectives, reference), figures=figures)
    if histories:
        paths.append(plot_anytime_hypervolume(histories, objectives, limits,
                                              Path(out_dir) / HYPERVOLUME_PNG,
                                              methods=report.method_order(runs)))
    if fronts:
        paths.append(report_fronts.plot_fronts(fronts, objectives,
                                               Path(out_dir) / report_fronts.FRONTS_PNG,
                                               true_front, methods=report.method_order(runs)))
    return paths
