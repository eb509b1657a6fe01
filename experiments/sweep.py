"""`dsmnas sweep`: DSM-NAS's K, M, entropy weight and learning rate swept over seeds.

Each configuration (K, M, entropy) is one variant of a comparison,
`MethodSpec("K4-M4-ent0.00075", "dsm", settings={"entropy": 0.00075}, env={"K": 4, "M": 4})`,
run for every seed as one Ray Tune trial by `experiments.compare`, so every output of
`dsmnas compare` is written too. The learning rate is swept only when values are given
(`--lr`); then the labels end in `-lr{value}` (`K4-M4-ent0.00075-lr0.01`), else the
space's learning rate is used and the labels are as before. The configurations:

- `grid`: every combination, K outermost, then M, then entropy, then lr, each in the order
  listed;
- `random` with `samples` N: N distinct combinations drawn uniformly, without replacement,
  from that grid by `numpy.random.default_rng(draw_seed)` (kept in grid order), so the same
  draw seed gives the same configurations and every value of a parameter is equally likely.

Settings come from, later winning: `SweepSettings`' defaults, a YAML file (its keys are the
field names below; unknown keys raise), the command-line flags (`--set` items are appended
to the file's). Everything is checked before Ray starts (`plan_sweep`).

The tables and plots are pure functions of the runs table, no Ray: `sweep.csv` (one row per
trial), `sweep.md` (configurations ranked by mean validation accuracy), `sweep_params.png`
(mean final accuracy against each swept parameter) and `sweep_heatmap.png` (K x M). The best
configuration is the one with the highest mean *validation* accuracy over its seeds: test
accuracy is reported, never used to choose.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from dsmnas.envs.registry import get_spec  # noqa: E402
from dsmnas.experiments import report  # noqa: E402
from dsmnas.experiments.compare import ComparePlan, plan_compare, split_set  # noqa: E402
from dsmnas.experiments.settings import KEYS, MethodSpec, SweepSettings  # noqa: E402,F401
from dsmnas.trainables.search import LearnerSettings  # noqa: E402
from dsmnas.envs.errors import ConfigError, MissingFileError

SWEEP_DIR = Path(__file__).resolve().parent / "sweeps"
"""Where named sweep files live: `--config NAME` reads `SWEEP_DIR/NAME.yaml`."""
PARAMETERS = ("K", "M", "entropy", "lr")
MODES = ("grid", "random")
PARAMS_PNG = "sweep_params.png"
HEATMAP_PNG = "sweep_heatmap.png"
MIN_COLOR_RANGE = 0.2
"""Smallest accuracy range (points) the heatmap's colours span."""



@dataclass(frozen=True)
class Config:
    """One swept configuration."""

    K: int
    M: int
    entropy: float
    lr: float | None = None
    """None: not swept (the space's learning rate)."""

    @property
    def label(self) -> str:
        # repr of a float is the shortest text that reads back as it: distinct values,
        # distinct labels
        lr = "" if self.lr is None else f"-lr{float(self.lr)!r}"
        return f"K{self.K}-M{self.M}-ent{float(self.entropy)!r}{lr}"

    @property
    def settings(self) -> dict[str, float]:
        """The DSM-NAS settings this configuration sets."""
        return {"entropy": self.entropy, **({} if self.lr is None else {"lr": self.lr})}


@dataclass(frozen=True)
class SweepPlan:
    settings: SweepSettings
    configs: tuple[Config, ...]
    compare: ComparePlan
    resources: dict[str, float]
    """What each trial reserves, as `tune.with_resources` takes it."""

    @property
    def reference(self) -> str:
        """The configuration the Welch t-tests compare with: the space's paper settings when
        swept, else the first one."""
        default = paper_config(self.settings.space).label
        labels = [c.label for c in self.configs]
        return default if default in labels else labels[0]


def paper_config(space: str) -> Config:
    """The space's own K, M and entropy (its `SpaceSpec` defaults; the paper's values); lr
    is None (not swept)."""
    spec = get_spec(space)
    return Config(spec.env_defaults.get("K"), spec.env_defaults.get("M"),
                  spec.learner_defaults.get("entropy", LearnerSettings.entropy))


def with_space_defaults(settings: SweepSettings) -> SweepSettings:
    """`settings` with the space's own value for each parameter not swept (empty)."""
    paper = paper_config(settings.space)
    return dataclasses.replace(
        settings, K=settings.K or (paper.K,), M=settings.M or (paper.M,),
        entropy=settings.entropy or (paper.entropy,),
    )


# ----------------------------------------------------------------------------- settings


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """The keys of a sweep YAML file (a path, or the NAME of `SWEEP_DIR/NAME.yaml`)."""
    p = Path(path).expanduser()
    if not p.exists() and p.suffix == "" and len(p.parts) == 1:
        p = SWEEP_DIR / f"{path}.yaml"
    if not p.is_file():
        raise MissingFileError(f"sweep config {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise ConfigError(f"sweep config {str(p)!r} is not valid YAML{line}") from None
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ConfigError(f"sweep config {str(p)!r} must be a mapping of keys to values")
    unknown = sorted(map(str, set(values) - set(KEYS)))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in sweep config {str(p)!r}; allowed: {', '.join(KEYS)}"
        )
    return values


def resolve_settings(
    file_values: dict[str, Any] | None = None, flags: dict[str, Any] | None = None
) -> SweepSettings:
    """Defaults, then the file's values, then the flags that were given (not None); checks
    every value's type and range (ValueError naming the key and the value)."""
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(given) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown sweep setting(s) {unknown}; allowed: {', '.join(KEYS)}")
    values = dict(file_values or {})
    if given.get("mode") == "grid" and "samples" not in given:
        values.pop("samples", None)  # --grid overrides a file's random draw
    # `set` items may hold commas (JSON lists): text is one item, not a comma-separated list
    sets = [*_items(values.get("set")), *_items(given.pop("set", None))]
    values.update(given)
    values["set"] = tuple(str(s) for s in sets)
    for key in ("K", "M"):
        if key in values:
            values[key] = parse_values(key, values[key], int)
    for key in ("entropy", "lr"):
        if key in values:
            values[key] = parse_values(key, values[key], float)
    for key in set(KEYS) - {"K", "M", "entropy", "lr", "set"}:
        if values.get(key) is not None:
            values[key] = _scalar(key, values[key])
    settings = SweepSettings(**values)
    _check(settings)
    return settings


def parse_values(name: str, value: Any, kind: type) -> tuple:
    """A swept parameter's values: a list, one value, or comma-separated text."""
    items = _as_list(name, value)
    if not items:
        raise ConfigError(f"{name} lists no value")
    out = []
    for item in items:
        v = _number(name, item, kind)
        if kind is int and v < 1:
            raise ConfigError(f"{name} must be integers >= 1, got {v}")
        if kind is float and not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"{name} must be finite numbers >= 0, got {v}")
        if name == "lr" and v == 0:
            raise ConfigError("lr must be finite numbers > 0, got 0.0")
        if v in out:
            raise ConfigError(f"{name} lists {v} twice")
        out.append(v)
    return tuple(out)


def _as_list(name: str, value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        raise ConfigError(f"{name} must be a value or a list, got a mapping")
    return [value]


def _items(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _number(name: str, item: Any, kind: type) -> int | float:
    what = "an integer" if kind is int else "a number"
    if isinstance(item, bool) or not isinstance(item, (int, float, str)):
        raise ConfigError(f"{name}: {item!r} is not {what}")
    if isinstance(item, str):
        try:
            item = kind(item.strip())
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not {what}") from None
    if kind is int and not isinstance(item, int):
        raise ConfigError(f"{name}: {item!r} is not {what}")
    return kind(item)


def _scalar(key: str, value: Any) -> Any:
    """A scalar setting as its field's type says (YAML may give "2e4" as text)."""
    kind = _kind(key)
    if kind in (int, float):
        return _number(key, value, kind)
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be text, got {value!r}")
    return value


def _kind(key: str) -> type:
    """int, float or str: the non-None type of SweepSettings' field `key`."""
    hint = typing.get_type_hints(SweepSettings)[key]
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0]


def _check(s: SweepSettings) -> None:
    if s.mode not in MODES:
        raise ConfigError(f"unknown mode {s.mode!r}; allowed: {', '.join(MODES)}")
    if s.mode == "random":
        if s.samples is None:
            raise ConfigError("mode random needs samples (--random N)")
        if s.samples < 1:
            raise ConfigError(f"samples must be >= 1, got {s.samples}")
    elif s.samples is not None:
        raise ConfigError("samples is only for mode random (--random N)")
    if s.draw_seed < 0:
        raise ConfigError(f"draw_seed must be >= 0, got {s.draw_seed}")
    if not s.cpus_per_trial > 0:
        raise ConfigError(f"cpus_per_trial must be > 0, got {s.cpus_per_trial}")
    if not s.gpus_per_trial >= 0:
        raise ConfigError(f"gpus_per_trial must be >= 0, got {s.gpus_per_trial}")


# --------------------------------------------------------------------------------- plan


def configurations(settings: SweepSettings) -> tuple[Config, ...]:
    """The swept configurations (see the module docstring for the order and the draw)."""
    settings = with_space_defaults(settings)
    grid = [Config(k, m, e, lr) for k, m, e, lr in
            itertools.product(settings.K, settings.M, settings.entropy, settings.lr or (None,))]
    if settings.mode == "grid":
        return tuple(grid)
    if settings.samples > len(grid):
        raise ConfigError(
            f"--random {settings.samples}: the grid has only {len(grid)} configuration(s)"
        )
    rng = np.random.default_rng(settings.draw_seed)
    picked = np.sort(rng.choice(len(grid), size=settings.samples, replace=False))
    return tuple(grid[i] for i in picked)


def split_sets(sets: Sequence[str], lr_swept: bool = False) -> tuple[list[str], dict[str, Any]]:
    """`--set` items: `env.KEY=VALUE` for every run's env (passed on to compare), and
    `dsm.KEY=VALUE` for every configuration's DSM-NAS settings. The swept parameters cannot
    be set this way (they would be silently overridden); lr only when it is swept."""
    env_sets: list[str] = []
    dsm: dict[str, Any] = {}
    for item in sets:
        try:
            prefix, key, value = split_set(item)
        except ConfigError:
            prefix, key, value = "", "", None
        if prefix not in ("env", "dsm"):
            raise ConfigError(f"--set {item!r}: a sweep takes env.KEY=VALUE or dsm.KEY=VALUE")
        swept = [("env", "K"), ("env", "M"), ("dsm", "entropy"), *([("dsm", "lr")] * lr_swept)]
        if (prefix, key) in swept:
            raise ConfigError(f"--set {item!r}: {key} is swept; use --{key}")
        if prefix == "env":
            env_sets.append(item)
        else:
            dsm[key] = value
    return env_sets, dsm


def plan_sweep(settings: SweepSettings) -> SweepPlan:
    """Everything checked without Ray (configurations, `--set`, data, resources)."""
    from dsmnas.envs.settings import parse_settings

    settings = with_space_defaults(settings)
    configs = configurations(settings)
    env_sets, dsm = split_sets(settings.set, lr_swept=bool(settings.lr))
    parse_settings("dsm", {**dsm, "entropy": 0.0}, LearnerSettings)
    specs = [MethodSpec(c.label, "dsm", settings={**dsm, **c.settings},
                        env={"K": c.K, "M": c.M}) for c in configs]
    compare = plan_compare(
        specs, settings.seeds, settings.first_seed,
        env={k: v for k, v in {"space": settings.space, "dataset": settings.dataset,
                               "table": settings.table, "budget_s": settings.budget}.items()
             if v is not None},
        sets=env_sets,
        population=settings.population,
    )
    resources = {"cpu": settings.cpus_per_trial}
    if settings.gpus_per_trial > 0:
        resources["gpu"] = settings.gpus_per_trial
    if settings.address is None:
        check_local_resources(resources)
    return SweepPlan(settings, configs, compare, resources)


def check_local_resources(resources: dict[str, float]) -> None:
    """A trial that asks a local Ray for more than the machine has would wait forever."""
    import ray

    if ray.is_initialized():
        have = ray.cluster_resources()
        cpus, gpus = have.get("CPU", 0), have.get("GPU", 0)
    else:
        try:  # what a local Ray will detect (cgroup limits included)
            from ray._private.utils import get_num_cpus

            cpus = get_num_cpus()
        except Exception:  # noqa: BLE001 - a private helper; fall back to the OS's count
            cpus = os.cpu_count() or 1
        gpus = 0
        if resources.get("gpu", 0) > 0:
            import torch

            gpus = torch.cuda.device_count()
    for name, have in (("cpu", cpus), ("gpu", gpus)):
        if resources.get(name, 0) > have:
            raise ConfigError(
                f"--{name}s-per-trial {resources[name]:g}: the local Ray has {have:g} "
                f"{name.upper()}(s); ask for fewer, or run on a cluster with --address"
            )


# ------------------------------------------------------------------- tables (no Ray)


def sweep_table(runs: pd.DataFrame, configs: Sequence[Config]) -> pd.DataFrame:
    """One row per trial: K, M, entropy, seed, the result fields of `dsmnas search`, status
    and the configuration's label; in the plan's order."""
    by_label = {c.label: c for c in configs}
    tests = report.test_columns(runs)
    rows = []
    for r in runs.to_dict("records"):
        c = by_label[r["method"]]
        rows.append({"K": c.K, "M": c.M, "entropy": c.entropy, "lr": c.lr,
                     "seed": int(r["seed"]),
                     **{k: r.get(k) for k in ("arch", "val_acc", *tests, "queries",
                                              "sim_time_s", "wall_time_s", "status")},
                     "label": c.label})
    cols = ["K", "M", "entropy", "lr", "seed", "arch", "val_acc", *tests, "queries", "sim_time_s",
            "wall_time_s", "status", "label"]
    return pd.DataFrame(rows, columns=cols)


def config_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per configuration (first-appearance order): n finished runs, mean and sample std of
    the validation and every test accuracy."""
    done = report.finished(table)
    accs = report.accuracy_columns(table)
    rows = []
    for label in dict.fromkeys(table["label"]):
        mine = table[table["label"] == label].iloc[0]
        sub = done[done["label"] == label]
        row = {"label": label, "K": mine["K"], "M": mine["M"], "entropy": mine["entropy"],
               "lr": mine["lr"], "n": len(sub)}
        for col in accs:
            v = sub[col].astype(float)
            row[f"{col}_mean"] = v.mean() if len(v) else math.nan
            row[f"{col}_std"] = v.std(ddof=1) if len(v) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def best_config(summary: pd.DataFrame) -> pd.Series:
    """The configuration with the highest mean validation accuracy (the first one on a tie).
    Test accuracy is not looked at: choosing on it would make the reported test accuracy
    an optimistic estimate."""
    ranked = summary[summary["n"] > 0]
    if ranked.empty:
        raise ConfigError("no configuration has a finished run")
    return ranked.loc[ranked["val_acc_mean"].idxmax()]


def plot_metric(table: pd.DataFrame, dataset: str) -> str:
    """What the plots show: the searched dataset's test accuracy when the data has it, else
    the validation accuracy."""
    col = f"{report.TEST_PREFIX}{dataset}"
    if col in table and report.finished(table)[col].notna().any():
        return col
    return "val_acc"


def by_parameter(table: pd.DataFrame, param: str, metric: str) -> pd.DataFrame:
    """Per value of `param` (ascending): mean, sample std and n of `metric` over every
    finished run with that value (all seeds, all values of the other parameters)."""
    done = report.finished(table).dropna(subset=[metric])
    g = done.assign(**{metric: done[metric].astype(float)}).groupby(param)[metric]
    out = g.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()
    return out.rename(columns={param: "value"}).sort_values("value", ignore_index=True)


def heatmap_grid(table: pd.DataFrame, metric: str):
    """(K values, M values, mean, n): `mean[i, j]` is the mean of `metric` over every finished
    run with K = Ks[i] and M = Ms[j] (all entropies and seeds); NaN where none."""
    done = report.finished(table).dropna(subset=[metric])
    Ks, Ms = sorted(table["K"].unique()), sorted(table["M"].unique())
    mean = np.full((len(Ks), len(Ms)), np.nan)
    n = np.zeros((len(Ks), len(Ms)), dtype=int)
    for (k, m), v in done.groupby(["K", "M"])[metric]:
        i, j = Ks.index(k), Ms.index(m)
        mean[i, j], n[i, j] = v.astype(float).mean(), len(v)
    return Ks, Ms, mean, n


def metric_name(metric: str) -> str:
    if metric.startswith(report.TEST_PREFIX):
        return f"test accuracy, {metric[len(report.TEST_PREFIX):]} (%)"
    return "validation accuracy (%)"


def _fmt(param: str, value) -> str:
    return f"{value:g}" if param in ("entropy", "lr") else str(int(value))


def plot_parameters(table: pd.DataFrame, metric: str, path: str | Path) -> Path:
    """One panel per swept parameter (all three when none is swept): mean ± std of the final
    `metric` against the parameter's values, equally spaced."""
    params = [p for p in PARAMETERS if table[p].nunique() > 1] or [
        p for p in PARAMETERS if table[p].notna().any()]
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


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.2f} ± {'–' if math.isnan(std) else f'{std:.2f}'}"


def sweep_markdown(summary: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """The configurations ranked by mean validation accuracy, and the best one."""
    best = best_config(summary)
    accs = ["val_acc", *[c[:-5] for c in summary.columns
                         if c.startswith(report.TEST_PREFIX) and c.endswith("_mean")]]
    names = ["val", *[c[len(report.TEST_PREFIX):] + " test" for c in accs[1:]]]
    ranked = summary.sort_values("val_acc_mean", ascending=False, kind="stable")
    lr = ["lr"] if summary["lr"].notna().any() else []
    lines = [f"# {title}", "", *([*notes, ""] if notes else []),
             "| rank | configuration | K | M | entropy | " + "".join(f"{c} | " for c in lr)
             + "n | " + " | ".join(names) + " |",
             "|" + "---|" * (6 + len(lr) + len(names))]
    for rank, r in enumerate(ranked.to_dict("records"), 1):
        cells = [str(rank), r["label"], str(r["K"]), str(r["M"]), f"{r['entropy']:g}",
                 *[f"{r['lr']:g}" for _ in lr],
                 str(r["n"]), *[_cell(r[f"{c}_mean"], r[f"{c}_std"]) for c in accs]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"**Best: {describe_best(best)}**", "",
              "Ranked by mean validation accuracy over seeds; test accuracy is reported, never "
              "used to choose. Accuracy in %, mean ± sample std (ddof = 1)."]
    return "\n".join(lines) + "\n"


def describe_best(best: pd.Series) -> str:
    tests = [c[:-5] for c in best.index if c.startswith(report.TEST_PREFIX) and c.endswith("_mean")]
    lr = "" if pd.isna(best["lr"]) else f", lr={best['lr']:g}"
    text = (f"{best['label']} (K={best['K']}, M={best['M']}, entropy={best['entropy']:g}{lr}): "
            f"val {_cell(best['val_acc_mean'], best['val_acc_std'])} over {best['n']} seed(s)")
    if tests:
        text += "; test " + ", ".join(
            f"{c[len(report.TEST_PREFIX):]} {_cell(best[c + '_mean'], best[c + '_std'])}"
            for c in tests)
    return text


def write_sweep(runs: pd.DataFrame, configs: Sequence[Config], out_dir: str | Path,
                dataset: str, title: str = "Sweep", notes: Sequence[str] = ()):
    """sweep.csv, sweep.md and the two plots; returns (paths, best configuration)."""
    out = Path(out_dir)
    table = sweep_table(runs, configs)
    table.to_csv(out / "sweep.csv", index=False)
    paths = [out / "sweep.csv"]
    if report.finished(table).empty:
        return paths, None
    summary = config_summary(table)
    (out / "sweep.md").write_text(sweep_markdown(summary, title, notes))
    metric = plot_metric(table, dataset)
    paths += [out / "sweep.md", plot_parameters(table, metric, out / PARAMS_PNG),
              plot_heatmap(table, metric, out / HEATMAP_PNG)]
    return paths, best_config(summary)


# ---------------------------------------------------------------------------------- run


def run_sweep(plan: SweepPlan, out_dir: str | Path,
              printer: Callable[[str], None] = print, resume: bool = False) -> pd.DataFrame:
    """Run the plan through `compare` (Ray Tune), write the sweep's outputs, print the best
    configuration; returns the sweep table. `resume`: as `run_compare`'s (keep the ok runs of
    the same plan in `out_dir`, run the rest)."""
    from dsmnas.experiments.compare import run_compare

    s = plan.settings
    printer(f"sweep: {len(plan.configs)} configuration(s) ({s.mode}"
            + (f", {s.samples} drawn with seed {s.draw_seed}" if s.mode == "random" else "")
            + f") over K {list(s.K)}, M {list(s.M)}, entropy {list(s.entropy)}"
            + (f", lr {list(s.lr)}" if s.lr else "") + "; "
            f"resources per trial {plan.resources}")
    runs = run_compare(plan.compare, out_dir, address=s.address,
                       max_concurrent=s.max_concurrent, retries=s.retries, printer=printer,
                       reference=plan.reference, resources=plan.resources, resume=resume)
    c = plan.compare
    notes = [f"Data: {c.source}; {c.env.space} / {c.env.dataset}; budget {c.budget_text} "
             f"per run; seeds {c.seeds[0]}–{c.seeds[-1]}; mode {s.mode}"
             + (f" ({s.samples} drawn with draw_seed {s.draw_seed})" if s.mode == "random" else "")
             + "."]
    paths, best = write_sweep(runs, plan.configs, out_dir, c.env.dataset,
                              title=f"Sweep of K, M, entropy{', lr' if s.lr else ''}: "
                                    f"{c.env.space} / {c.env.dataset}",
                              notes=notes)
    printer("wrote " + ", ".join(p.name for p in paths))
    if best is None:
        printer("no run finished: no best configuration")
    else:
        printer("best configuration (highest mean validation accuracy; test accuracy not "
                "used to choose): " + describe_best(best))
    return sweep_table(runs, plan.configs)
