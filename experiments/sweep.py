"""`dsmnas sweep`: DSM-NAS's K, M, entropy weight and learning rate swept over seeds.

Each configuration (K, M, entropy) is one variant of a comparison,
`MethodSpec("K4-M4-ent0.00075", "dsm", settings={"entropy": 0.00075}, env={"K": 4, "M": 4})`,
run for every seed by `experiments.compare` (Ray Tune), so every output of `dsmnas compare`
is written too. The learning rate is swept only when values are given (`--lr`); then the
labels end in `-lr{value}` (`K4-M4-ent0.00075-lr0.01`), else the space's learning rate is
used. K and M are lists of values (choices); entropy and lr are lists, or a range
`LOW..HIGH` drawn log-uniformly (`LogUniform`). How configurations are chosen
(`search_alg`):

- `grid`: every combination of the lists, K outermost, then M, then entropy, then lr, each in
  the order listed (no range);
- `random` with `num_samples` N: N distinct configurations drawn by
  `numpy.random.default_rng(draw_seed)`: over lists only, N distinct combinations of the
  grid drawn uniformly without replacement (kept in grid order); with a range, each value
  drawn independently (uniformly from a list, log-uniformly from a range). Fixed before Ray
  starts: the same draw seed gives the same configurations;
- `optuna` (Optuna's TPE) or `hyperopt` (HyperOpt's TPE) with `num_samples` N: a Tune search
  algorithm draws each of N trials from the results so far (`experiments.tune_search`), never
  the same configuration twice. Each configuration is one trial of all its seeds (population
  mode), whose objective is their mean best validation accuracy; which configurations are
  drawn depends on the order trials end, so a run is reproducible with `--max-concurrent 1`.

A value drawn from a range is rounded to 4 significant digits (the label holds it exactly).
`--scheduler asha` stops the configurations behind at milestones of the budget, with any of
these (each configuration one trial of all its seeds).

Settings come from, later winning: `SweepSettings`' defaults, a YAML file (its keys are the
field names below; unknown keys raise), the command-line flags (`--set` items are appended
to the file's). They are read as `SweepSettings`' fields' types say and built by
`parse_settings` (`envs.settings`). Everything is checked before Ray starts (`plan_sweep`).

The sweep's own outputs, `sweep.csv`, `sweep.md`, `sweep_params.png` and
`sweep_heatmap.png`, are written by `experiments.report.write_sweep` (no Ray); the best
configuration is the one with the highest mean *validation* accuracy over its seeds, among
the configurations that ran their whole budget.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import yaml

from dsmnas.envs.errors import ConfigError, MissingFileError, require_extra
from dsmnas.envs.registry import get_spec
from dsmnas.envs.settings import parse_settings, read_values
from dsmnas.experiments import report
from dsmnas.experiments.plan import ComparePlan, plan_compare, split_set
from dsmnas.experiments.settings import (  # noqa: F401  (Config, rounded: the sweep API)
    KEYS, RANGED, Config, LogUniform, MethodSpec, SweepSettings, rounded)
from dsmnas.trainables.search import LearnerSettings

SWEEP_DIR = Path(__file__).resolve().parent / "sweeps"
"""Where named sweep files live: `--config NAME` reads `SWEEP_DIR/NAME.yaml`."""
SEARCH_ALGS = ("grid", "random", "optuna", "hyperopt")
SEARCHERS = ("optuna", "hyperopt")
"""The search algorithms that draw each trial from the results so far (Tune searchers)."""
SCHEDULERS = ("fifo", "asha")
SWEPT = ("K", "M", "entropy", "lr")
"""The swept parameters: lists of values (entropy and lr: or a `LogUniform` range)."""
LEGACY_KEYS = {"mode": "search_alg", "samples": "num_samples"}
"""Sweep-file keys of 0.4.0 and their names now."""



@dataclass(frozen=True)
class SweepPlan:
    settings: SweepSettings
    configs: tuple[Config, ...]
    compare: ComparePlan
    resources: dict[str, float]
    """What each trial reserves, as `tune.with_resources` takes it."""
    dsm: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Every configuration's other DSM-NAS settings (`--set dsm.KEY=VALUE`)."""

    @property
    def searcher(self) -> bool:
        """Whether a Tune search algorithm draws the configurations as the sweep runs."""
        return self.settings.search_alg in SEARCHERS

    def scheduler(self):
        """The Tune scheduler the settings ask for (None: FIFO, every trial to its end).
        ASHA compares trials on their mean best validation accuracy so far at milestones of
        the budget (`trainables.live`: TIME_ATTR, OBJECTIVE; with --objectives the mean
        validation hypervolume so far, FRONT_OBJECTIVE), never on test figures."""
        s = self.settings
        if s.scheduler == "fifo":
            return None
        from ray.tune.schedulers import ASHAScheduler

        from dsmnas.trainables.live import TIME_ATTR, objective

        c = self.compare
        budget = c.budget_s if c.budget_s is not None else c.budget_queries
        return ASHAScheduler(time_attr=TIME_ATTR, metric=objective(c.objectives), mode="max",
                             max_t=budget,
                             grace_period=s.asha_grace * budget,
                             reduction_factor=s.asha_reduction)

    @property
    def reference(self) -> str:
        """The configuration the Welch t-tests compare with: the space's paper settings when
        swept, else the first one."""
        default = paper_config(self.settings.space).label
        labels = [c.label for c in self.configs]
        return default if default in labels or not labels else labels[0]


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
    values = {LEGACY_KEYS.get(k, k): v for k, v in values.items()}
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
    values = dict(file_values or {})
    if given.get("search_alg") == "grid" and "num_samples" not in given:
        values.pop("num_samples", None)  # --search-alg grid overrides a file's draw
    if "num_samples" in given and "search_alg" not in given and "search_alg" not in values:
        given["search_alg"] = "random"  # --num-samples N alone: N drawn at random
    # `set` items may hold commas (JSON lists): text is one item, not a comma-separated list
    sets = [*_items(values.get("set")), *_items(given.pop("set", None))]
    values.update(given)
    values["set"] = tuple(str(s) for s in sets)
    ranges = {k: read_range(k, values.pop(k)) for k in RANGED if is_range(values.get(k))}
    for key in ("K", "M"):
        if is_range(values.get(key)):
            raise ConfigError(f"{key} {values[key]!r}: {key} takes a list of values (choices), "
                              "not a range")
    values = {**read_values(SweepSettings, values), **ranges}
    for key in SWEPT:
        if key in values and not isinstance(values[key], LogUniform) and not values[key]:
            raise ConfigError(f"{key} lists no value")
    (settings,) = parse_settings("sweep", values, SweepSettings)
    _check(settings)
    return settings


def is_range(value: Any) -> bool:
    """Whether a swept value is written as a range (`LOW..HIGH` text)."""
    return isinstance(value, LogUniform) or (isinstance(value, str) and ".." in value)


def read_range(key: str, value: Any) -> LogUniform:
    """A `LOW..HIGH` text as a log-uniform range, 0 < LOW < HIGH; ConfigError otherwise."""
    if isinstance(value, LogUniform):
        low, high = value.low, value.high
    else:
        parts = value.split("..")
        try:
            if len(parts) != 2:
                raise ValueError
            low, high = (float(t) for t in parts)
        except ValueError:
            raise ConfigError(f"{key} {value!r} is not a range: write LOW..HIGH, e.g. "
                              "1e-4..1e-2") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ConfigError(f"{key} range {value!s}: a log-uniform range needs 0 < LOW < HIGH")
    return LogUniform(float(low), float(high))


def _items(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _check(s: SweepSettings) -> None:
    for name in SWEPT:
        values = getattr(s, name)
        if isinstance(values, LogUniform):
            if name not in RANGED:
                raise ConfigError(f"{name} takes a list of values, not a range")
            if s.search_alg == "grid":
                raise ConfigError(f"{name} {values}: a grid takes lists, not ranges; use "
                                  "--search-alg random, optuna or hyperopt with --num-samples")
            continue
        for i, v in enumerate(values):
            if name in ("K", "M") and v < 1:
                raise ConfigError(f"{name} must be integers >= 1, got {v}")
            if name in ("entropy", "lr") and not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be finite numbers >= 0, got {v}")
            if name == "lr" and v == 0:
                raise ConfigError("lr must be finite numbers > 0, got 0.0")
            if v in values[:i]:
                raise ConfigError(f"{name} lists {v} twice")
    if s.search_alg not in SEARCH_ALGS:
        raise ConfigError(f"unknown search algorithm {s.search_alg!r}; allowed: "
                          f"{', '.join(SEARCH_ALGS)}")
    if s.scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {s.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
    if not 0 < s.asha_grace <= 1:
        raise ConfigError(f"asha_grace must be in (0, 1], got {s.asha_grace}")
    if s.asha_reduction < 2:
        raise ConfigError(f"asha_reduction must be an integer >= 2, got {s.asha_reduction}")
    if s.search_alg == "grid":
        if s.num_samples is not None:
            raise ConfigError("--num-samples is for --search-alg random, optuna or hyperopt "
                              "(a grid runs every combination)")
    elif s.num_samples is None:
        raise ConfigError(f"--search-alg {s.search_alg} needs --num-samples N")
    elif s.num_samples < 1:
        raise ConfigError(f"--num-samples must be >= 1, got {s.num_samples}")
    if s.draw_seed < 0:
        raise ConfigError(f"draw_seed must be >= 0, got {s.draw_seed}")
    if not s.cpus_per_trial > 0:
        raise ConfigError(f"cpus_per_trial must be > 0, got {s.cpus_per_trial}")
    if not s.gpus_per_trial >= 0:
        raise ConfigError(f"gpus_per_trial must be >= 0, got {s.gpus_per_trial}")
    if s.search_alg in SEARCHERS:  # Tune's searcher imports its package when it is made
        require_extra(f"--search-alg {s.search_alg}", [s.search_alg], s.search_alg)


# --------------------------------------------------------------------------------- plan


def configurations(settings: SweepSettings) -> tuple[Config, ...]:
    """The swept configurations of grid and random (see the module docstring for the order
    and the draw); () for a Tune searcher, which draws them as the sweep runs."""
    settings = with_space_defaults(settings)
    if settings.search_alg in SEARCHERS:
        return ()
    lists = [getattr(settings, k) for k in SWEPT]
    if not any(isinstance(v, LogUniform) for v in lists):
        grid = [Config(k, m, e, lr) for k, m, e, lr in
                itertools.product(settings.K, settings.M, settings.entropy,
                                  settings.lr or (None,))]
        if settings.search_alg == "grid":
            return tuple(grid)
        if settings.num_samples > len(grid):
            raise ConfigError(f"--num-samples {settings.num_samples}: the grid has only "
                              f"{len(grid)} configuration(s)")
        rng = np.random.default_rng(settings.draw_seed)
        picked = np.sort(rng.choice(len(grid), size=settings.num_samples, replace=False))
        return tuple(grid[i] for i in picked)
    rng = np.random.default_rng(settings.draw_seed)
    drawn: dict[str, Config] = {}
    for _ in range(100 * settings.num_samples):  # a draw repeats only when lists are short
        if len(drawn) == settings.num_samples:
            break
        values = [_draw(rng, v) for v in lists]
        c = Config(*values[:3], values[3] if settings.lr else None)
        drawn.setdefault(c.label, c)
    if len(drawn) < settings.num_samples:
        raise ConfigError(f"--num-samples {settings.num_samples}: only {len(drawn)} distinct "
                          "configurations were drawn")
    return tuple(drawn.values())


def _draw(rng: np.random.Generator, values: tuple | LogUniform) -> Any:
    if isinstance(values, LogUniform):
        return rounded(math.exp(rng.uniform(math.log(values.low), math.log(values.high))))
    return values[int(rng.integers(len(values)))] if values else None


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
    """Everything checked without Ray (configurations, `--set`, data, resources). A Tune
    searcher's plan checks every K x M pair (the first entropy and lr: they only reach the
    learner), and its compare plan has those pairs as its methods until the sweep has run."""
    settings = with_space_defaults(settings)
    configs = configurations(settings)
    lr_swept = bool(settings.lr)
    env_sets, dsm = split_sets(settings.set, lr_swept=lr_swept)
    parse_settings("dsm", {**dsm, "entropy": 0.0}, LearnerSettings)
    checked = configs or tuple(
        Config(k, m, _first(settings.entropy), _first(settings.lr) if lr_swept else None)
        for k, m in itertools.product(settings.K, settings.M))
    specs = [MethodSpec(c.label, "dsm", settings={**dsm, **c.settings},
                        env={"K": c.K, "M": c.M}) for c in checked]
    compare = plan_compare(
        specs, settings.seeds, settings.first_seed,
        env={k: v for k, v in {"space": settings.space, "dataset": settings.dataset,
                               "table": settings.table, "budget_s": settings.budget}.items()
             if v is not None},
        sets=env_sets,
        population=settings.population,
    )
    whole = [m.label for m in compare.methods if m.label in compare.pooled]
    for asked, what in ((settings.scheduler == "asha", "--scheduler asha"),
                        (settings.search_alg in SEARCHERS, f"--search-alg {settings.search_alg}")):
        if not asked:
            continue
        if compare.population < len(compare.seeds):
            raise ConfigError(
                f"{what} compares configurations, each one trial of all its seeds: "
                f"--population must be >= --seeds ({compare.population} < "
                f"{len(compare.seeds)})")
        if len(whole) != len(compare.methods):
            raise ConfigError(f"{what} needs every configuration to run as one population (a "
                              "setting here rules population mode out)")
    resources = {"cpu": settings.cpus_per_trial}
    if settings.gpus_per_trial > 0:
        resources["gpu"] = settings.gpus_per_trial
    if settings.address is None:
        check_local_resources(resources)
    return SweepPlan(settings, configs, compare, resources, dsm)


def _first(values: tuple | LogUniform) -> float:
    return values.low if isinstance(values, LogUniform) else values[0]


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


# ---------------------------------------------------------------------------------- run


def run_sweep(plan: SweepPlan, out_dir: str | Path,
              printer: Callable[[str], None] = print, resume: bool = False,
              live=None) -> pd.DataFrame:
    """Run the plan through `compare` (Ray Tune), write the sweep's outputs, print the best
    configuration; returns the sweep table. `resume`, `live`: as `run_compare`'s (keep the
    ok runs of the same plan in `out_dir`, run the rest; how trials report)."""
    from dsmnas.experiments.compare import run_compare

    s = plan.settings
    swept = (f"K {list(s.K)}, M {list(s.M)}, entropy {_text(s.entropy)}"
             + (f", lr {_text(s.lr)}" if s.lr else ""))
    how = {"grid": "grid", "random": f"random, {s.num_samples} drawn with seed {s.draw_seed}",
           }.get(s.search_alg, f"{s.search_alg}, {s.num_samples} trials, seed {s.draw_seed}")
    trials = None
    if plan.searcher:
        from dsmnas.experiments.tune_search import SearcherTrials

        trials = SearcherTrials(plan)
        printer(f"sweep: {s.search_alg} over {swept}; scheduler {s.scheduler}; resources per "
                f"trial {plan.resources}")
    else:
        printer(f"sweep: {len(plan.configs)} configuration(s) ({how}) over {swept}; "
                f"scheduler {s.scheduler}; resources per trial {plan.resources}")
    runs = run_compare(plan.compare, out_dir, address=s.address,
                       max_concurrent=s.max_concurrent, retries=s.retries, printer=printer,
                       reference=plan.reference, resources=plan.resources, resume=resume,
                       scheduler=plan.scheduler(), trials=trials, trackers=s.trackers,
                       **({} if live is None else {"live": live}))
    configs = plan.configs if trials is None else trials.drawn
    c = plan.compare
    notes = [f"Data: {c.source}; {c.env.space} / {c.env.dataset}; budget {c.budget_text} "
             f"per run; seeds {c.seeds[0]}–{c.seeds[-1]}; configurations: {how} over {swept}; "
             f"scheduler {s.scheduler}."]
    paths, best = report.write_sweep(
        runs, configs, out_dir, c.env.dataset,
        title=f"Sweep of K, M, entropy{', lr' if s.lr else ''}: {c.env.space} / {c.env.dataset}",
        notes=notes)
    printer("wrote " + ", ".join(p.name for p in paths))
    if best is None:
        printer("no configuration ran its whole budget: no best configuration")
    else:
        by = ("validation hypervolume" if "hypervolume_val_mean" in best.index
              else "validation accuracy")
        printer(f"best configuration (highest mean {by}; test figures not used to choose): "
                + report.describe_best(best))
    return report.sweep_table(runs, configs)


def _text(values: tuple | LogUniform) -> str:
    return f"log-uniform {values}" if isinstance(values, LogUniform) else str(list(values))
