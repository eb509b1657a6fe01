"""Reports of a comparison: from a runs table (+ the runs' histories) to summaries and plots.

Pure functions of pandas frames, no Ray: `dsmnas compare` calls them on what its trials
produced, the tests call them on hand-made tables.

A runs table has one row per (method, seed): `status` ("ok" or "failed"), `arch`, `val_acc`,
one `test_acc_<dataset>` column per dataset the data has, `queries`, `sim_time_s`,
`wall_time_s` and `error` (failed runs only). Accuracies are in percent, as NAS-Bench-201
reports them. Statistics are over the runs that finished; std is the sample std (ddof = 1);
p-values are Welch's t-test (unequal variances) against the reference method's runs.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (also on headless cluster nodes)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import StrMethodFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

TEST_PREFIX = "test_acc_"
VISITED_PREFIX = "best_visited_"
"""Prefix of the best visited architecture's columns: `best_visited_arch`,
`best_visited_val_acc`, `best_visited_test_acc_<dataset>`."""
OK, FAILED = "ok", "failed"
ANYTIME_PNG = "anytime_val.png"
TEST_PNG = "test_acc.png"


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


def _mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.2f} ± {'–' if math.isnan(std) else f'{std:.2f}'}"


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
) -> str:
    """Table II layout: methods as rows, datasets as columns, "mean ± std"; then the Welch
    p-values against `reference`, then every failed run with its error."""
    tests = test_columns(runs)
    datasets = [c[len(TEST_PREFIX):] for c in tests]
    lines = [f"# {title}", ""]
    lines += [f"{n}" for n in notes] + ([""] if notes else [])
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
) -> list[Path]:
    """summary.csv, summary.md and the two plots in `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs, reference)
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(summary_markdown(summary, runs, reference, title, notes))
    paths = [out / "summary.csv", out / "summary.md"]
    if histories:
        paths.append(plot_anytime(histories, out / ANYTIME_PNG, methods=method_order(runs)))
    if not finished(runs).empty:
        paths.append(plot_test_distribution(runs, out / TEST_PNG))
    return paths
