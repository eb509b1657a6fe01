"""The plan of a comparison: what `dsmnas compare`, `ablate` and `sweep` run, checked.

`plan_compare` checks everything that can be checked without Ray: method names and labels,
`--set` keys, the env settings and the data (one env is built and reset), each method's
settings against its space and budget, and which methods run in population mode. The
result, a `ComparePlan`, says which (label, seed) runs there are and how they are cut into
Tune trials. `plan_identity` is what a folder's `plan.json` records, and `previous_rows`
decides, before Ray starts, whether a folder's `runs.csv` may be resumed.

No Ray here, at import or in any function: bad input fails in a second with one
`ConfigError` (tests/test_compare.py checks that planning imports no Ray). Running the plan
is `experiments.compare`; recording its trials, `experiments.recorder`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from dsmnas.envs.benchmarks.base import budget_text
from dsmnas.envs.config import EnvConfig
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.objectives import Objectives, figure_names, require_moocore, true_front
from dsmnas.experiments.settings import TEST_PREFIX, VISITED_PREFIX
from dsmnas.experiments.settings import MethodSpec, RunSettings
from dsmnas.trainables.methods import check_method, method_names, population_refusal

_LABEL = re.compile(r"^[A-Za-z0-9_+-]+$")
REFERENCE = "dsm"
"""The method that the Welch t-tests compare against."""


@dataclass(frozen=True)
class ComparePlan:
    """What a comparison runs, checked: methods x seeds on one env setting."""

    methods: tuple[MethodSpec, ...]
    seeds: tuple[int, ...]
    env: EnvConfig
    """Env settings shared by all runs (the seed is set per run)."""
    datasets: tuple[str, ...]
    """Datasets with test accuracy in the data: one `test_acc_<dataset>` column each."""
    source: str
    budget_s: float | None
    budget_queries: int | None = None
    population: int = 1
    """Most searches per population trial (1: every search is its own trial)."""
    pooled: tuple[str, ...] = ()
    """Labels whose seeds run in population mode (`trainables.population`): the methods that
    support it with these settings, when `population` > 1."""
    objectives: Objectives | None = None
    """With `--objectives`: the objectives and their fixed normalisation (the probe's
    benchmark's), for the reports; None: one objective."""
    figures: tuple[str, ...] = ()
    """With `--objectives`: the runs.csv columns of the fronts' figures
    (`envs.objectives.figure_names`: hypervolume_val, hypervolume_test[, igd_plus_val])."""
    true_front: tuple[tuple[float, ...], ...] | None = None
    """With `--objectives`, where the space knows it: the true front's raw values (every
    architecture within the limits that no other dominates; `envs.objectives.true_front`),
    for the reports' `fronts.png`."""

    @property
    def budget_text(self) -> str:
        return budget_text(self.budget_s, self.budget_queries)

    @property
    def runs(self) -> list[tuple[str, int]]:
        return [(m.label, s) for m in self.methods for s in self.seeds]

    def trials(self, runs: Sequence[tuple[str, int]] | None = None
               ) -> list[tuple[str, tuple[int, ...]]]:
        """(label, seeds) of each Tune trial that runs some of `runs` (default: all): one seed
        per trial, or a pooled label's population groups (`population_groups` of all the
        plan's seeds, so a seed's population does not depend on which runs are left)."""
        wanted = set(self.runs if runs is None else runs)
        trials = []
        for m in self.methods:
            groups = (population_groups(self.seeds, self.population)
                      if m.label in self.pooled else [(s,) for s in self.seeds])
            trials += [(m.label, g) for g in groups if any((m.label, s) in wanted for s in g)]
        return trials

    @property
    def columns(self) -> list[str]:
        return [
            "method", "seed", "status", "arch", "val_acc",
            *[f"{TEST_PREFIX}{d}" for d in self.datasets],
            *self.figures,
            "queries", "sim_time_s", "wall_time_s",
            "best_visited_arch", "best_visited_val_acc",
            *[f"{VISITED_PREFIX}{TEST_PREFIX}{d}" for d in self.datasets],
            "error",
        ]


def population_groups(seeds: Sequence[int], size: int) -> list[tuple[int, ...]]:
    """`seeds` in order, cut into the fewest contiguous groups of at most `size`, of sizes
    that differ by at most one (100 seeds, size 50: 0-49 and 50-99; 60 seeds: two of 30)."""
    seeds = [int(s) for s in seeds]
    count = max(1, math.ceil(len(seeds) / size))
    return [tuple(g.tolist()) for g in np.array_split(np.array(seeds, dtype=int), count)
            if len(g)]


def parse_methods(text: str) -> list[MethodSpec]:
    """Parse `--methods`, e.g. "dsm,random,nograph=dsm": `label=method` runs a method under
    another name (a variant, given its own settings with `--set label.key=value`)."""
    specs: list[MethodSpec] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        label, _, method = item.partition("=") if "=" in item else (item, "", item)
        if method not in method_names():
            raise ConfigError(
                f"unknown method {method!r}; allowed: {', '.join(method_names())}"
            )
        if not _LABEL.match(label) or label == "env":
            raise ConfigError(
                f"bad method label {label!r}: use letters, digits, '_', '+', '-' (not 'env')"
            )
        if label in {s.label for s in specs}:
            raise ConfigError(f"method {label!r} is listed twice")
        specs.append(MethodSpec(label, method))
    if not specs:
        raise ConfigError("--methods names no method")
    return specs


def parse_value(text: str) -> Any:
    """A `--set` value: JSON (numbers, true/false, null, lists), else the text itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def split_set(item: str) -> tuple[str, str, Any]:
    """One `--set TARGET.KEY=VALUE` item (also a sweep file's `set` entry): (target, key,
    value parsed by `parse_value`); the key may itself hold dots (`dsm.env.K`)."""
    target, eq, value = str(item).partition("=")
    prefix, dot, key = target.partition(".")
    if not (eq and dot and key and prefix):
        raise ConfigError(f"--set {item!r}: expected METHOD.KEY=VALUE (or env.KEY=VALUE)")
    return prefix, key, parse_value(value)


def apply_sets(
    specs: Sequence[MethodSpec], sets: Sequence[str]
) -> tuple[list[MethodSpec], dict[str, Any]]:
    """Apply `label.key=value` items to the methods' settings, `label.env.key=value` items to
    one method's env settings; `env.key=value` items are returned as shared env overrides."""
    settings = {s.label: dict(s.settings) for s in specs}
    own_env = {s.label: dict(s.env) for s in specs}
    env: dict[str, Any] = {}
    for item in sets:
        label, key, value = split_set(item)
        if label == "env":
            env[key] = value
        elif label in settings and key.startswith("env."):
            own_env[label][key[len("env."):]] = value
        elif label in settings:
            settings[label][key] = value
        else:
            raise ConfigError(
                f"--set {item!r}: {label!r} is not a compared method; "
                f"compared: {', '.join(settings)} (or env)"
            )
    return [MethodSpec(s.label, s.method, settings[s.label], own_env[s.label]) for s in specs], env


def plan_compare(
    methods: str | Sequence[MethodSpec],
    seeds: int,
    first_seed: int = 0,
    env: dict[str, Any] | None = None,
    sets: Sequence[str] = (),
    population: int = RunSettings.population,
) -> ComparePlan:
    """Check everything that can be checked without Ray; ValueError/FileNotFoundError else.

    `methods` is the `--methods` text, or ready `MethodSpec`s (the named ablations).
    `population`: most searches per population trial for the methods that support it (1:
    none)."""
    parsed = parse_methods(methods) if isinstance(methods, str) else list(methods)
    specs, env_sets = apply_sets(parsed, sets)
    if not (isinstance(seeds, int) and seeds >= 1):
        raise ConfigError(f"--seeds must be an integer >= 1, got {seeds!r}")
    if isinstance(first_seed, bool) or not (isinstance(first_seed, int) and first_seed >= 0):
        raise ConfigError(f"--first-seed must be an integer >= 0, got {first_seed!r}")
    if isinstance(population, bool) or not (isinstance(population, int) and population >= 1):
        raise ConfigError(f"--population must be an integer >= 1, got {population!r}")
    env = {**(env or {}), **env_sets}
    if env.get("table"):
        # trials run in other processes and folders: the table must not be a relative path
        env["table"] = str(Path(env["table"]).expanduser().resolve())
    if "seed" in env:
        raise ConfigError("env.seed is set per run; use --seeds and --first-seed")
    env_cfg = EnvConfig.from_dict(env)
    from dsmnas.envs import DSMNASEnv

    probe = DSMNASEnv(env_cfg.to_dict())
    probe.reset(seed=first_seed)  # also checks that the budget can pay for the start
    pooled = []
    for spec in specs:
        own_cfg = env_cfg
        if spec.env:
            if "seed" in spec.env:
                raise ConfigError(f"{spec.label}.env.seed is set per run; use --seeds")
            own_cfg = EnvConfig.from_dict({**env_cfg.to_dict(), **spec.env})
            DSMNASEnv(own_cfg.to_dict()).reset(seed=first_seed)
        # unknown or mistyped settings, a space or budget the method cannot run in
        check_method(spec.method, own_cfg, spec.settings, label=spec.label)
        if population > 1 and seeds > 1 and \
                population_refusal(spec.method, own_cfg, spec.settings) is None:
            pooled.append(spec.label)
    datasets = tuple(probe.benchmark.report(probe.space.sample(np.random.default_rng(0))))
    objectives = probe.benchmark.objectives
    figures = () if objectives is None else figure_names(probe.benchmark.objective_scale)
    truth = None
    if objectives is not None:  # last: the settings' own errors are said first
        require_moocore()
        truth = true_front(objectives, probe.benchmark.objective_scale, probe.benchmark.limits)
    return ComparePlan(
        methods=tuple(specs),
        seeds=tuple(range(first_seed, first_seed + seeds)),
        env=env_cfg,
        datasets=datasets,
        source=probe.benchmark.source,
        budget_s=probe.benchmark.clock.budget_s,
        budget_queries=probe.benchmark.clock.budget_queries,
        population=population if pooled else 1,
        pooled=tuple(pooled),
        objectives=objectives,
        figures=figures,
        true_front=None if truth is None else tuple(map(tuple, truth.tolist())),
    )


def run_key(label: str, seeds: Sequence[int]) -> str:
    """The `run` value of a Tune trial (its one grid value): "LABEL:SEED", or
    "LABEL:SEED,SEED,..." for a population."""
    return f"{label}:{','.join(str(int(s)) for s in seeds)}"


def split_run(run: str) -> tuple[str, list[int]]:
    """(label, seeds) of a trial's `run` value (`run_key`'s inverse)."""
    label, _, seeds = run.rpartition(":")  # labels have no ':'
    return label, [int(s) for s in seeds.split(",")]


PLAN_FILE = "plan.json"
"""What a comparison folder was planned for: checked before a `--resume` runs anything."""


def plan_identity(plan: ComparePlan) -> dict[str, Any]:
    """What must match for a folder's rows to be reused: methods (labels, method, settings,
    own env), the shared env settings without the seed, the budget, the data, the columns.
    The seeds may differ (a resume can add seeds)."""
    env = plan.env.to_dict()
    env.pop("seed", None)
    return json.loads(json.dumps({
        "methods": [{"label": m.label, "method": m.method, "settings": m.settings,
                     "env": m.env} for m in plan.methods],
        "env": env,
        "budget_s": plan.budget_s,
        "budget_queries": plan.budget_queries,
        "source": plan.source,
        "columns": plan.columns,
        # absent (None) in folders of lone runs, and of versions before population mode
        "population": ({"size": plan.population, "methods": list(plan.pooled)}
                       if plan.pooled else None),
    }, default=str))


def plan_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first difference between two `plan_identity`s, in words; None when they match."""
    def labels(ident):
        return ",".join(m["label"] for m in ident.get("methods", []))

    if labels(old) != labels(new):
        return f"methods {labels(old) or '(none)'} there, {labels(new)} now"
    for a, b in zip(old["methods"], new["methods"]):
        for key in ("method", "settings", "env"):
            if a.get(key) != b.get(key):
                return f"{a['label']} {key} {a.get(key)!r} there, {b.get(key)!r} now"
    old_env, new_env = old.get("env", {}), new.get("env", {})
    for key in sorted(set(old_env) | set(new_env)):
        if old_env.get(key) != new_env.get(key):
            return f"env.{key} {old_env.get(key)!r} there, {new_env.get(key)!r} now"
    for key in ("budget_s", "budget_queries", "source", "columns", "population"):
        if old.get(key) != new.get(key):
            return f"{key} {old.get(key)!r} there, {new.get(key)!r} now"
    return None


def previous_rows(plan: ComparePlan, out: Path, resume: bool) -> dict[tuple[str, int], dict]:
    """The rows of an earlier run of the same plan in `out` (empty when there is none);
    ValueError, before Ray starts, when reusing them would be wrong."""
    runs_csv, plan_json = out / "runs.csv", out / PLAN_FILE
    if not runs_csv.exists():
        return {}
    if not resume:
        raise ConfigError(
            f"{runs_csv} already exists: pass --resume to run only its failed and missing "
            "runs, or choose another --out"
        )
    if not plan_json.exists():
        raise ConfigError(f"cannot resume: {plan_json} is missing, so {runs_csv} cannot be "
                         "checked against this plan; choose another --out")
    diff = plan_difference(json.loads(plan_json.read_text()), plan_identity(plan))
    if diff:
        raise ConfigError(f"cannot resume {out}: it holds another plan ({diff}); "
                         "choose another --out")
    frame = pd.read_csv(runs_csv)
    if list(frame.columns) != plan.columns:
        raise ConfigError(f"cannot resume: the columns of {runs_csv} are not this plan's "
                         f"({', '.join(map(str, frame.columns))})")
    rows: dict[tuple[str, int], dict] = {}
    for rec in frame.to_dict("records"):
        rec["error"] = "" if pd.isna(rec.get("error")) else rec["error"]
        for text in ("arch", "best_visited_arch"):
            rec[text] = "" if pd.isna(rec.get(text)) else rec[text]
        rows[(str(rec["method"]), int(rec["seed"]))] = rec
    return rows

