"""Reports of a comparison or a sweep: from a runs table (+ histories) to summaries and plots.

Pure functions of pandas frames, no Ray: `dsmnas compare` (and `ablate`, `sweep`) calls them
on what its trials produced, the tests call them on hand-made tables.

A runs table has one row per (method, seed): `status` ("ok" or "failed"), `arch`, `val_acc`,
one `test_acc_<dataset>` column per dataset the data has, `queries`, `sim_time_s`,
`wall_time_s` and `error` (failed runs only). Accuracies are in percent, as NAS-Bench-201
reports them. Statistics are over the runs that finished; std is the sample std (ddof = 1);
p-values are Welch's t-test (unequal variances) against the reference method's runs.

A sweep's tables and plots (`dsmnas sweep`) are made the same way from its runs table:
`sweep.csv` (one row per trial), `sweep.md` (configurations ranked by mean validation
accuracy), `sweep_params.png` (mean final accuracy against each swept parameter) and
`sweep_heatmap.png` (K x M). The best configuration is the one with the highest mean
*validation* accuracy over its seeds: test accuracy is reported, never used to choose.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (also on headless cluster nodes)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import StrMethodFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from dsmnas.envs.errors import ConfigError  # noqa: E402
from dsmnas.envs.objectives import FIGURES, IGD_PLUS  # noqa: E402

if TYPE_CHECKING:
    from dsmnas.experiments.settings import Config

from dsmnas.experiments.settings import (  # noqa: E402,F401
    FAILED, OK, STOPPED, TEST_PREFIX, VISITED_PREFIX)
ANYTIME_PNG = "anytime_val.png"
TEST_PNG = "test_acc.png"
FRONTS = "fronts"
"""With `--objectives`: the folder of each run's front, `fronts/<method>-<seed>.csv`."""


def test_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith(TEST_PREFIX)]


def accuracy_columns(runs: pd.DataFrame) -> list[str]:
    return ["val_acc", *test_columns(runs)]


def visited_columns(runs: pd.DataFrame) -> list[str]:
    """The best visited architecture's accuracy columns the runs have (none in folders
    written before they existed)."""
    return [VISITED_PREFIX + c for c in accuracy_columns(runs) if VISITED_PREFIX + c in runs]


def method_order(runs: pd.DataFrame) -> list[str]:
    """Methods in order of first appearance (the order the user listed them)."""
    return list(dict.fromkeys(runs["method"]))


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == OK]


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Welch's t-test p-value (two-sided); NaN when either side has fewer than two runs."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    with warnings.catch_warnings():
        # identical runs (same answer on every seed) make scipy warn about precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def summarize(runs: pd.DataFrame, reference: str = "dsm") -> pd.DataFrame:
    """One row per method: n_runs, n_ok, n_failed; `<acc>_mean` and `<acc>_std` for val and
    every test column; `<test col>_p` against `reference` (NaN for the reference itself, or
    when it is absent); mean queries, simulated and wall time."""
    ok = finished(runs)
    ref = ok[ok["method"] == reference]
    rows = []
    for method in method_order(runs):
        mine = runs[runs["method"] == method]
        done = ok[ok["method"] == method]
        row = {
            "method": method,
            "n_runs": len(mine),
            "n_ok": len(done),
            "n_failed": int((mine["status"] == FAILED).sum()),
        }
        for col in [*accuracy_columns(runs), *visited_columns(runs)]:
            values = done[col].astype(float)
            row[f"{col}_mean"] = values.mean() if len(values) else math.nan
            row[f"{col}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            if col.startswith(TEST_PREFIX):
                row[f"{col}_p"] = (
                    math.nan if method == reference else welch_p(done[col], ref[col])
                )
        for col in ("queries", "sim_time_s", "wall_time_s"):
            row[f"{col}_mean"] = done[col].astype(float).mean() if len(done) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def failures(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.loc[runs["status"] == FAILED, ["method", "seed", "error"]]


def _mean_std(mean: float, std: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {'–' if math.isnan(std) else f'{std:.{digits}f}'}"


def _p(p: float) -> str:
    if math.isnan(p):
        return "–"
    return f"{p:.3f}" if p >= 1e-3 else f"{p:.1e}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def summary_markdown(
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    reference: str = "dsm",
    title: str = "Comparison",
    notes: Sequence[str] = (),
    lead: Sequence[str] = (),
) -> str:
    """Table II layout: methods as rows, datasets as columns, "mean ± std"; then the Welch
    p-values against `reference`, then every failed run with its error. `lead`: lines
    before the table (with `--objectives`, the hypervolume ranking)."""
    tests = test_columns(runs)
    datasets = [c[len(TEST_PREFIX):] for c in tests]
    lines = [f"# {title}", ""]
    lines += [f"{n}" for n in notes] + ([""] if notes else [])
    lines += list(lead)
    header = ["method", "runs", "failed", "val", *datasets, "queries", "wall s"]
    rows = [
        [
            r["method"], str(r["n_runs"]), str(r["n_failed"]),
            *[_mean_std(r[f"{c}_mean"], r[f"{c}_std"]) for c in ["val_acc", *tests]],
            "–" if math.isnan(r["queries_mean"]) else f"{r['queries_mean']:.1f}",
            "–" if math.isnan(r["wall_time_s_mean"]) else f"{r['wall_time_s_mean']:.2f}",
        ]
        for r in summary.to_dict("records")
    ]
    lines += _table(header, rows)
    lines += [
        "",
        "Accuracy in %, mean ± sample std (ddof = 1) over the runs that finished; `val` is the "
        "searched dataset's validation accuracy of the answer, the dataset columns its test "
        "accuracy (read after the search, never by it)."
        + ("" if tests else " This data has no test accuracy."),
    ]
    if tests:
        lines += ["", f"## Welch t-test against {reference} (two-sided p-value)", ""]
        if reference not in set(summary["method"]):
            lines += [f"`{reference}` is not among the compared methods: no p-values."]
        else:
            others = summary[summary["method"] != reference]
            lines += _table(
                ["method", *datasets],
                [[r["method"], *[_p(r[f"{c}_p"]) for c in tests]] for _, r in others.iterrows()],
            )
    visited = visited_columns(runs)
    if visited:
        lines += ["", "## Best architecture visited", "",
                  "The best architecture each run visited (its answer, or a query within the "
                  "limits with a higher validation accuracy), as the official code also logs "
                  "it: for a method whose answer is not its best query (`dsm-noupdate` "
                  "answers with the best of its initial centers) this is what it found.", ""]
        lines += _table(
            ["method", "val", *datasets],
            [[r["method"], *[_mean_std(r[f"{c}_mean"], r[f"{c}_std"]) for c in visited]]
             for r in summary.to_dict("records")],
        )
    failed = failures(runs)
    lines += ["", f"## Failed runs ({len(failed)})", ""]
    if failed.empty:
        lines += ["None."]
    else:
        lines += [f"- {r.method} seed {r.seed}: {r.error}" for r in failed.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _axis(history: pd.DataFrame, x: str) -> np.ndarray:
    """A history's x values: simulated time, or the number of queries made (`"queries"`)."""
    if x == "queries":
        return np.arange(1, len(history) + 1, dtype=float)
    return history[x].to_numpy(float)


def best_so_far_on_grid(history: pd.DataFrame, grid_s: np.ndarray,
                        x: str = "sim_time_s") -> np.ndarray:
    """Best validation accuracy among the queries made up to each grid point of `x`
    (simulated seconds, or queries; NaN before the first query; the last value is held after
    the run's last query)."""
    if history.empty:
        return np.full(len(grid_s), np.nan)
    h = history.sort_values("sim_time_s", kind="stable")
    best = np.maximum.accumulate(h["val_acc"].to_numpy(float))
    idx = np.searchsorted(_axis(h, x), grid_s, side="right") - 1
    return np.where(idx >= 0, best[np.clip(idx, 0, None)], np.nan)


def anytime_axis(histories: Mapping[tuple[str, int], pd.DataFrame]) -> str:
    """"sim_time_s", or "queries" when no query cost simulated time (budgets of queries)."""
    end = max((h["sim_time_s"].max() for h in histories.values() if not h.empty), default=0.0)
    return "sim_time_s" if end > 0 else "queries"


def anytime_curves(
    histories: Mapping[tuple[str, int], pd.DataFrame], points: int = 200,
    x: str | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The common grid of `x` (default `anytime_axis`: 0 .. the longest run's simulated time,
    or its number of queries) and, per method, an array (runs x grid) of best-so-far
    validation accuracy."""
    x = x or anytime_axis(histories)
    end = max((_axis(h, x).max() for h in histories.values() if not h.empty), default=0.0)
    grid = np.linspace(0.0, float(end), points)
    curves: dict[str, list[np.ndarray]] = {}
    for (method, _seed), h in histories.items():
        curves.setdefault(method, []).append(best_so_far_on_grid(h, grid, x))
    return grid, {m: np.vstack(c) for m, c in curves.items()}


def _colors(methods: Sequence[str]) -> dict[str, str]:
    """One color per method, the same in every plot."""
    return {m: f"C{i % 10}" for i, m in enumerate(methods)}


def plot_anytime(
    histories: Mapping[tuple[str, int], pd.DataFrame],
    path: str | Path,
    methods: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Best-so-far validation accuracy against simulated search time (against queries when
    the budget is counted in queries): mean line and ±1 std band per method, on a common
    grid. `methods` fixes the colors (and the order)."""
    x = anytime_axis(histories)
    grid, curves = anytime_curves(histories, x=x)
    colors = _colors(list(methods or []) + [m for m in curves if m not in (methods or [])])
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for method in colors:
        if method not in curves:
            continue
        c, color = curves[method], colors[method]
        n = np.sum(~np.isnan(c), axis=0)
        with warnings.catch_warnings():  # grid points before any run's first query: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(c, axis=0)
            std = np.where(n > 1, np.nanstd(c, axis=0, ddof=1), 0.0)
        ax.plot(grid, mean, color=color, lw=1.8, label=f"{method} (n={len(c)})")
        ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    ax.set_xlabel("simulated search time (s)" if x == "sim_time_s" else "queries")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(title or "Best-so-far validation accuracy (mean ± 1 std over seeds)")
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.grid(alpha=0.3)
    _zoom_to_tail(ax, curves)
    ax.legend(loc="lower right")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _zoom_to_tail(ax, curves: Mapping[str, np.ndarray]) -> None:
    """The first queries are far below the rest; show the range where the methods differ."""
    values = np.concatenate([c.ravel() for c in curves.values()]) if curves else np.array([])
    values = values[~np.isnan(values)]
    if len(values) > 10:
        lo, hi = np.percentile(values, 5), values.max()
        pad = 0.05 * max(hi - lo, 1e-6)
        ax.set_ylim(lo - pad, hi + pad)


def plot_test_distribution(runs: pd.DataFrame, path: str | Path) -> Path:
    """Final test accuracy per method, one panel per dataset: box plots with every run as a
    dot. Data without test accuracy shows the final validation accuracy instead."""
    ok = finished(runs)
    cols = test_columns(runs) or ["val_acc"]
    methods = method_order(runs)
    colors = _colors(methods)
    n_failed = {m: int(((runs["method"] == m) & (runs["status"] == FAILED)).sum()) for m in methods}
    # One row per dataset: side by side, ten methods made each panel too narrow to read.
    fig, axes = plt.subplots(
        len(cols), 1, figsize=(max(6.0, 1.3 * len(methods) + 1.5), 3.4 * len(cols) + 0.6),
        layout="constrained", squeeze=False,
    )
    rng = np.random.default_rng(0)  # jitter only; fixed so that reruns give the same picture
    for ax, col in zip(axes[:, 0], cols):
        data = [ok.loc[ok["method"] == m, col].astype(float).dropna().to_numpy() for m in methods]
        positions = np.arange(1, len(methods) + 1)
        shown = [i for i, d in enumerate(data) if len(d)]
        if shown:
            ax.boxplot([data[i] for i in shown], positions=positions[shown], widths=0.5,
                       showfliers=False, medianprops={"color": "black"})
        for i, d in enumerate(data):
            x = positions[i] + rng.uniform(-0.12, 0.12, len(d))
            ax.scatter(x, d, s=12, color=colors[methods[i]], alpha=0.7, zorder=3)
        ax.set_xticks(positions, [
            f"{m}\n(n={len(d)}" + (f", {n_failed[m]} failed)" if n_failed[m] else ")")
            for m, d in zip(methods, data)
        ])
        ax.set_xlim(0.4, len(methods) + 0.6)
        name = col[len(TEST_PREFIX):] if col.startswith(TEST_PREFIX) else "searched dataset"
        kind = "test" if col.startswith(TEST_PREFIX) else "validation"
        ax.set_title(f"{name}")
        ax.set_ylabel(f"final {kind} accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Accuracy of the found architecture, per method (box: quartiles; dots: runs)")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def load_histories(runs: pd.DataFrame, folder: str | Path) -> dict[tuple[str, int], pd.DataFrame]:
    """The histories of the finished runs, read from `<folder>/<method>-<seed>.csv`."""
    out = {}
    for r in finished(runs).itertuples(index=False):
        path = Path(folder) / history_name(r.method, r.seed)
        if path.exists():
            out[(r.method, int(r.seed))] = pd.read_csv(path)
    return out


def history_name(method: str, seed: int) -> str:
    return f"{method}-{int(seed)}.csv"


def write_report(
    runs: pd.DataFrame,
    histories: Mapping[tuple[str, int], pd.DataFrame],
    out_dir: str | Path,
    reference: str = "dsm",
    title: str = "Comparison",
    notes: Sequence[str] = (),
    lead: Sequence[str] = (),
    figures: pd.DataFrame | None = None,
) -> list[Path]:
    """summary.csv, summary.md and the two plots in `out_dir`; returns their paths. `lead`:
    summary.md's lines before its table, `figures`: more columns per method for summary.csv
    (with `--objectives`: `experiments.report_objectives.write_report`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs, reference)
    if figures is not None:
        summary = summary.merge(figures, on="method", how="left")
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(summary_markdown(summary, runs, reference, title, notes,
                                                     lead))
    paths = [out / "summary.csv", out / "summary.md"]
    if histories:
        paths.append(plot_anytime(histories, out / ANYTIME_PNG, methods=method_order(runs)))
    if not finished(runs).empty:
        paths.append(plot_test_distribution(runs, out / TEST_PNG))
    return paths


# ------------------------------------------------------------------------------- sweeps
# A sweep's runs are a comparison's, one label per configuration (`experiments.sweep`):
# `configs` are its `sweep.Config`s (K, M, entropy, lr and the label).

SWEEP_PARAMETERS = ("K", "M", "entropy", "lr")
PARAMS_PNG = "sweep_params.png"
HEATMAP_PNG = "sweep_heatmap.png"
MIN_COLOR_RANGE = 0.2
"""Smallest accuracy range (points) the sweep heatmap's colours span."""


FIGURE_NAMES = {"hypervolume_val": "HV val", "hypervolume_test": "HV test",
                IGD_PLUS: "IGD+ val"}
"""The fronts' figures (`envs.objectives.FIGURES`, IGD+) as tables name them."""


def sweep_table(runs: pd.DataFrame, configs: Sequence[Config]) -> pd.DataFrame:
    """One row per trial: K, M, entropy, seed, the result fields of `dsmnas search`, status
    and the configuration's label; in the plan's order."""
    by_label = {c.label: c for c in configs}
    tests = test_columns(runs)
    fronts = [c for c in FIGURES if c in runs]  # with --objectives
    rows = []
    for r in runs.to_dict("records"):
        c = by_label[r["method"]]
        rows.append({"K": c.K, "M": c.M, "entropy": c.entropy, "lr": c.lr,
                     "seed": int(r["seed"]),
                     **{k: r.get(k) for k in ("arch", "val_acc", *tests, *fronts, "queries",
                                              "sim_time_s", "wall_time_s", "status")},
                     "label": c.label})
    cols = ["K", "M", "entropy", "lr", "seed", "arch", "val_acc", *tests, *fronts, "queries",
            "sim_time_s", "wall_time_s", "status", "label"]
    return pd.DataFrame(rows, columns=cols)


def config_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per configuration (first-appearance order): n finished runs, runs stopped by a
    scheduler, queries spent by all its runs, mean and sample std of the validation and
    every test accuracy."""
    done = finished(table)
    accs = accuracy_columns(table) + [c for c in FIGURES if c in table]
    rows = []
    for label in dict.fromkeys(table["label"]):
        mine = table[table["label"] == label].iloc[0]
        sub = done[done["label"] == label]
        runs = table[table["label"] == label]
        row = {"label": label, "K": mine["K"], "M": mine["M"], "entropy": mine["entropy"],
               "lr": mine["lr"], "n": len(sub),
               "stopped": int((runs["status"] == STOPPED).sum()),
               "queries": float(pd.to_numeric(runs["queries"], errors="coerce").sum())}
        for col in accs:
            v = sub[col].astype(float)
            row[f"{col}_mean"] = v.mean() if len(v) else math.nan
            row[f"{col}_std"] = v.std(ddof=1) if len(v) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def rank_key(summary: pd.DataFrame) -> str:
    """What a sweep ranks by: the mean validation hypervolume of the fronts with
    `--objectives`, else the mean validation accuracy."""
    return "hypervolume_val_mean" if "hypervolume_val_mean" in summary else "val_acc_mean"


def best_config(summary: pd.DataFrame) -> pd.Series:
    """The configuration with the highest mean validation accuracy (with `--objectives`, the
    highest mean validation hypervolume; the first one on a tie). Test figures are not looked
    at: choosing on them would make the reported test figures optimistic estimates."""
    ranked = summary[summary["n"] > 0]
    if ranked.empty:
        raise ConfigError("no configuration has a finished run")
    return ranked.loc[ranked[rank_key(summary)].idxmax()]


def plot_metric(table: pd.DataFrame, dataset: str) -> str:
    """What the plots show: the searched dataset's test accuracy when the data has it, else
    the validation accuracy."""
    col = f"{TEST_PREFIX}{dataset}"
    if col in table and finished(table)[col].notna().any():
        return col
    return "val_acc"


def by_parameter(table: pd.DataFrame, param: str, metric: str) -> pd.DataFrame:
    """Per value of `param` (ascending): mean, sample std and n of `metric` over every
    finished run with that value (all seeds, all values of the other parameters)."""
    done = finished(table).dropna(subset=[metric])
    g = done.assign(**{metric: done[metric].astype(float)}).groupby(param)[metric]
    out = g.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()
    return out.rename(columns={param: "value"}).sort_values("value", ignore_index=True)


def heatmap_grid(table: pd.DataFrame, metric: str):
    """(K values, M values, mean, n): `mean[i, j]` is the mean of `metric` over every finished
    run with K = Ks[i] and M = Ms[j] (all entropies and seeds); NaN where none."""
    done = finished(table).dropna(subset=[metric])
    Ks, Ms = sorted(table["K"].unique()), sorted(table["M"].unique())
    mean = np.full((len(Ks), len(Ms)), np.nan)
    n = np.zeros((len(Ks), len(Ms)), dtype=int)
    for (k, m), v in done.groupby(["K", "M"])[metric]:
        i, j = Ks.index(k), Ms.index(m)
        mean[i, j], n[i, j] = v.astype(float).mean(), len(v)
    return Ks, Ms, mean, n


def metric_name(metric: str) -> str:
    if metric.startswith(TEST_PREFIX):
        return f"test accuracy, {metric[len(TEST_PREFIX):]} (%)"
    return "validation accuracy (%)"


def _fmt(param: str, value) -> str:
    return f"{value:g}" if param in ("entropy", "lr") else str(int(value))


def plot_parameters(table: pd.DataFrame, metric: str, path: str | Path) -> Path:
    """One panel per swept parameter (all three when none is swept): mean ± std of the final
    `metric` against the parameter's values, equally spaced."""
    params = [p for p in SWEEP_PARAMETERS if table[p].nunique() > 1] or [
        p for p in SWEEP_PARAMETERS if table[p].notna().any()]
    fig, axes = plt.subplots(1, len(params), figsize=(4.0 * len(params), 3.8),
                             squeeze=False, sharey=True, layout="constrained")
    for ax, param in zip(axes[0], params):
        d = by_parameter(table, param, metric)
        xs = np.arange(len(d))
        ax.errorbar(xs, d["mean"], yerr=np.nan_to_num(d["std"].to_numpy(float)),
                    marker="o", capsize=4, lw=1.8)
        ax.set_xticks(xs, [f"{_fmt(param, v)}\n(n={n})" for v, n in zip(d["value"], d["n"])])
        ax.set_xlim(-0.5, len(d) - 0.5)
        ax.set_xlabel({"entropy": "entropy weight", "lr": "learning rate"}.get(param, param))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"final {metric_name(metric)}")
    fig.suptitle(f"Final {metric_name(metric)[:-4]}: mean ± std over seeds and the other "
                 "parameters (n: runs)")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_heatmap(table: pd.DataFrame, metric: str, path: str | Path) -> Path:
    """K (rows) x M (columns): mean final `metric` over entropies and seeds, each cell
    labelled with its mean and number of runs."""
    Ks, Ms, mean, n = heatmap_grid(table, metric)
    fig, ax = plt.subplots(figsize=(1.3 * len(Ms) + 2.6, 0.9 * len(Ks) + 1.8),
                           layout="constrained")
    finite = mean[np.isfinite(mean)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    # a colour range of at least MIN_COLOR_RANGE points: differences far below the seeds'
    # noise should not look like contrast. Black text on viridis' bright upper part.
    half = max(finite.max() - finite.min(), MIN_COLOR_RANGE) / 2 if finite.size else 1.0
    image = ax.imshow(np.ma.masked_invalid(mean), cmap="viridis", aspect="auto",
                      vmin=mid - half, vmax=mid + half)
    for i, j in itertools.product(range(len(Ks)), range(len(Ms))):
        if np.isfinite(mean[i, j]):
            ax.text(j, i, f"{mean[i, j]:.2f}\nn={n[i, j]}", ha="center", va="center",
                    fontsize=9, color="black" if mean[i, j] > mid + 0.2 * half else "white")
        else:
            ax.text(j, i, "not run", ha="center", va="center", fontsize=9, color="grey")
    ax.set_xticks(range(len(Ms)), [str(m) for m in Ms])
    ax.set_yticks(range(len(Ks)), [str(k) for k in Ks])
    ax.set_xlabel("M (local search distance)")
    ax.set_ylabel("K (subspaces)")
    fig.colorbar(image, ax=ax, label=f"mean {metric_name(metric)}")
    ax.set_title("Mean over entropy weights and seeds (n: runs)", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path



def sweep_markdown(summary: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """The configurations ranked by mean validation accuracy, and the best one."""
    best = best_config(summary)
    tests = [c[:-5] for c in summary.columns
             if c.startswith(TEST_PREFIX) and c.endswith("_mean")]
    fronts = [c for c in FIGURES if f"{c}_mean" in summary]
    accs = [*fronts, "val_acc", *tests]
    names = [*[FIGURE_NAMES[c] for c in fronts], "val",
             *[c[len(TEST_PREFIX):] + " test" for c in tests]]
    ranked = summary.sort_values(rank_key(summary), ascending=False, kind="stable")
    lr = ["lr"] if summary["lr"].notna().any() else []
    lines = [f"# {title}", "", *([*notes, ""] if notes else []),
             "| rank | configuration | K | M | entropy | " + "".join(f"{c} | " for c in lr)
             + "n | queries | " + " | ".join(names) + " |",
             "|" + "---|" * (7 + len(lr) + len(names))]
    for rank, r in enumerate(ranked.to_dict("records"), 1):
        n = str(r["n"]) + (f" ({r['stopped']} stopped)" if r["stopped"] else "")
        cells = [str(rank), r["label"], str(r["K"]), str(r["M"]), f"{r['entropy']:g}",
                 *[f"{r['lr']:g}" for _ in lr], n, f"{r['queries']:,.0f}",
                 *[_mean_std(r[f"{c}_mean"], r[f"{c}_std"], 4 if c in fronts else 2)
                   for c in accs]]
        lines.append("| " + " | ".join(cells) + " |")
    stopped = int(summary["stopped"].sum())
    lines += ["", f"**Best: {describe_best(best)}**", "",
              f"Compute: {summary['queries'].sum():,.0f} queries in all, over "
              f"{len(summary)} configurations ({int(summary['n'].sum())} runs finished"
              + (f", {stopped} stopped by the scheduler" if stopped else "") + ").", "",
              "Ranked by mean validation "
              + ("hypervolume of the fronts (--objectives)" if fronts else "accuracy")
              + " over the runs that finished (stopped runs are never ranked); queries: all "
              "the configuration's runs spent; test figures are reported, never used to "
              "choose. Accuracy in %, mean ± sample std (ddof = 1)."]
    return "\n".join(lines) + "\n"


def describe_best(best: pd.Series) -> str:
    tests = [c[:-5] for c in best.index if c.startswith(TEST_PREFIX) and c.endswith("_mean")]
    lr = "" if pd.isna(best["lr"]) else f", lr={best['lr']:g}"
    text = (f"{best['label']} (K={best['K']}, M={best['M']}, entropy={best['entropy']:g}{lr}): "
            + (f"HV val {best['hypervolume_val_mean']:.4f} ± {best['hypervolume_val_std']:.4f}, "
               if "hypervolume_val_mean" in best.index else "")
            + f"val {_mean_std(best['val_acc_mean'], best['val_acc_std'])} over {best['n']} "
            f"seed(s)")
    if tests:
        text += "; test " + ", ".join(
            f"{c[len(TEST_PREFIX):]} {_mean_std(best[c + '_mean'], best[c + '_std'])}"
            for c in tests)
    return text


def write_sweep(runs: pd.DataFrame, configs: Sequence[Config], out_dir: str | Path,
                dataset: str, title: str = "Sweep", notes: Sequence[str] = ()):
    """sweep.csv, sweep.md and the two plots; returns (paths, best configuration)."""
    out = Path(out_dir)
    table = sweep_table(runs, configs)
    table.to_csv(out / "sweep.csv", index=False)
    paths = [out / "sweep.csv"]
    if finished(table).empty:
        return paths, None
    summary = config_summary(table)
    (out / "sweep.md").write_text(sweep_markdown(summary, title, notes))
    metric = plot_metric(table, dataset)
    paths += [out / "sweep.md", plot_parameters(table, metric, out / PARAMS_PNG),
              plot_heatmap(table, metric, out / HEATMAP_PNG)]
    return paths, best_config(summary)
