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
to the file's). They are read as `SweepSettings`' fields' types say and built by
`parse_settings` (`envs.settings`). Everything is checked before Ray starts (`plan_sweep`).

The sweep's own outputs, `sweep.csv`, `sweep.md`, `sweep_params.png` and
`sweep_heatmap.png`, are written by `experiments.report.write_sweep` (no Ray); the best
configuration is the one with the highest mean *validation* accuracy over its seeds.
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

from dsmnas.envs.errors import ConfigError, MissingFileError
from dsmnas.envs.registry import get_spec
from dsmnas.envs.settings import parse_settings, read_values
from dsmnas.experiments import report
from dsmnas.experiments.plan import ComparePlan, plan_compare, split_set
from dsmnas.experiments.settings import KEYS, MethodSpec, SweepSettings
from dsmnas.trainables.search import LearnerSettings

SWEEP_DIR = Path(__file__).resolve().parent / "sweeps"
"""Where named sweep files live: `--config NAME` reads `SWEEP_DIR/NAME.yaml`."""
MODES = ("grid", "random")
SCHEDULERS = ("fifo", "asha")
SWEPT = ("K", "M", "entropy", "lr")
"""The swept parameters: lists of values."""



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

    def scheduler(self):
        """The Tune scheduler the settings ask for (None: FIFO, every trial to its end).
        ASHA compares trials on their mean best validation accuracy so far at milestones of
        the budget (`trainables.live`: TIME_ATTR, OBJECTIVE), never on test accuracy."""
        s = self.settings
        if s.scheduler == "fifo":
            return None
        from ray.tune.schedulers import ASHAScheduler

        from dsmnas.trainables.live import OBJECTIVE, TIME_ATTR

        c = self.compare
        budget = c.budget_s if c.budget_s is not None else c.budget_queries
        return ASHAScheduler(time_attr=TIME_ATTR, metric=OBJECTIVE, mode="max", max_t=budget,
                             grace_period=s.asha_grace * budget,
                             reduction_factor=s.asha_reduction)

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
    values = dict(file_values or {})
    if given.get("mode") == "grid" and "samples" not in given:
        values.pop("samples", None)  # --mode grid overrides a file's random draw
    # `set` items may hold commas (JSON lists): text is one item, not a comma-separated list
    sets = [*_items(values.get("set")), *_items(given.pop("set", None))]
    values.update(given)
    values["set"] = tuple(str(s) for s in sets)
    values = read_values(SweepSettings, values)
    for key in SWEPT:
        if key in values and not values[key]:
            raise ConfigError(f"{key} lists no value")
    (settings,) = parse_settings("sweep", values, SweepSettings)
    _check(settings)
    return settings


def _items(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _check(s: SweepSettings) -> None:
    for name in SWEPT:
        values = getattr(s, name)
        for i, v in enumerate(values):
            if name in ("K", "M") and v < 1:
                raise ConfigError(f"{name} must be integers >= 1, got {v}")
            if name in ("entropy", "lr") and not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be finite numbers >= 0, got {v}")
            if name == "lr" and v == 0:
                raise ConfigError("lr must be finite numbers > 0, got 0.0")
            if v in values[:i]:
                raise ConfigError(f"{name} lists {v} twice")
    if s.mode not in MODES:
        raise ConfigError(f"unknown mode {s.mode!r}; allowed: {', '.join(MODES)}")
    if s.scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {s.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
    if not 0 < s.asha_grace <= 1:
        raise ConfigError(f"asha_grace must be in (0, 1], got {s.asha_grace}")
    if s.asha_reduction < 2:
        raise ConfigError(f"asha_reduction must be an integer >= 2, got {s.asha_reduction}")
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
    if settings.scheduler == "asha":
        whole = [m.label for m in compare.methods if m.label in compare.pooled]
        if len(whole) != len(compare.methods) or compare.population < len(compare.seeds):
            raise ConfigError(
                f"--scheduler asha compares configurations, each one trial of all its seeds: "
                f"--population must be >= --seeds ({compare.population} < "
                f"{len(compare.seeds)})" if compare.population < len(compare.seeds) else
                "--scheduler asha needs every configuration to run as one population (a "
                "setting here rules population mode out)")
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


# ---------------------------------------------------------------------------------- run


def run_sweep(plan: SweepPlan, out_dir: str | Path,
              printer: Callable[[str], None] = print, resume: bool = False,
              live=None) -> pd.DataFrame:
    """Run the plan through `compare` (Ray Tune), write the sweep's outputs, print the best
    configuration; returns the sweep table. `resume`, `live`: as `run_compare`'s (keep the
    ok runs of the same plan in `out_dir`, run the rest; how trials report)."""
    from dsmnas.experiments.compare import run_compare

    s = plan.settings
    printer(f"sweep: {len(plan.configs)} configuration(s) ({s.mode}"
            + (f", {s.samples} drawn with seed {s.draw_seed}" if s.mode == "random" else "")
            + f") over K {list(s.K)}, M {list(s.M)}, entropy {list(s.entropy)}"
            + (f", lr {list(s.lr)}" if s.lr else "") + "; "
            f"resources per trial {plan.resources}")
    runs = run_compare(plan.compare, out_dir, address=s.address,
                       max_concurrent=s.max_concurrent, retries=s.retries, printer=printer,
                       reference=plan.reference, resources=plan.resources, resume=resume,
                       scheduler=plan.scheduler(), trackers=s.trackers,
                       **({} if live is None else {"live": live}))
    c = plan.compare
    notes = [f"Data: {c.source}; {c.env.space} / {c.env.dataset}; budget {c.budget_text} "
             f"per run; seeds {c.seeds[0]}–{c.seeds[-1]}; mode {s.mode}"
             + (f" ({s.samples} drawn with draw_seed {s.draw_seed})" if s.mode == "random" else "")
             + "."]
    paths, best = report.write_sweep(
        runs, plan.configs, out_dir, c.env.dataset,
        title=f"Sweep of K, M, entropy{', lr' if s.lr else ''}: {c.env.space} / {c.env.dataset}",
        notes=notes)
    printer("wrote " + ", ".join(p.name for p in paths))
    if best is None:
        printer("no run finished: no best configuration")
    else:
        printer("best configuration (highest mean validation accuracy; test accuracy not "
                "used to choose): " + report.describe_best(best))
    return report.sweep_table(runs, plan.configs)
