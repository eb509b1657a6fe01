"""`dsmnas compare`: every (method, seed) as one Ray Tune trial, then the report.

The plan (`plan_compare`) is checked before Ray starts: method names, `--set` keys, the env
settings and the data (one env is built and reset). `run_compare` runs the grid method x seed
through `tune.Tuner`; a `RunsRecorder` callback rewrites `runs.csv` and the histories as each
trial finishes or finally fails, so an interrupted comparison keeps every finished run. At the
end `experiments.report` writes the summaries and plots.

Output folder: `runs.csv`, `plan.json` (what was planned: methods, env settings, budget;
checked on `--resume`), `histories/<method>-<seed>.csv`, `summary.md`, `summary.csv`,
`anytime_val.png`, `test_acc.png`, and `tune/` (Tune's own trial folders, with the full
traceback of every failed attempt in `error.txt`).

Resuming (`resume=True`, `--resume`): a folder that already holds `runs.csv` and `plan.json`
of the same plan keeps its ok rows; only the failed and missing (label, seed) runs are run,
and the report is written over all rows. Without it, an existing `runs.csv` is an error, so
results are never overwritten by accident.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from dsmnas.envs.benchmarks.base import budget_text
from dsmnas.envs.config import EnvConfig
from dsmnas.experiments import report
from dsmnas.experiments.settings import MethodSpec, RunSettings
from dsmnas.trainables.methods import check_method, method_names, population_refusal
from dsmnas.envs.errors import ConfigError

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
            *[f"{report.TEST_PREFIX}{d}" for d in self.datasets],
            "queries", "sim_time_s", "wall_time_s",
            "best_visited_arch", "best_visited_val_acc",
            *[f"{report.VISITED_PREFIX}{report.TEST_PREFIX}{d}" for d in self.datasets],
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
    )


class _ByLabel:
    """`tune.sample_from` callable: the value for the trial's method label (picklable)."""

    def __init__(self, table: dict[str, Any]):
        self.table = table

    def __call__(self, spec) -> Any:
        return self.table[_split_run(spec.config["run"])[0]]


def _run_key(label: str, seeds: Sequence[int]) -> str:
    return f"{label}:{','.join(str(int(s)) for s in seeds)}"


def _split_run(run: str) -> tuple[str, list[int]]:
    """(label, seeds) of a trial's `run` key, "LABEL:SEED" or "LABEL:SEED,SEED,..." (a
    population)."""
    label, _, seeds = run.rpartition(":")  # labels have no ':'
    return label, [int(s) for s in seeds.split(",")]


class _RunPart:
    """`tune.sample_from` callable: the label ("label"), the seeds ("seeds") or the first
    seed ("seed", the env's) of the trial's run."""

    def __init__(self, part: str):
        self.part = part

    def __call__(self, spec) -> Any:
        label, seeds = _split_run(spec.config["run"])
        return {"label": label, "seeds": seeds, "seed": seeds[0]}[self.part]


def param_space(plan: ComparePlan, runs: Sequence[tuple[str, int]] | None = None) -> dict[str, Any]:
    """One grid point per trial of `plan.trials(runs)` (default: all of the plan's runs; a
    resume passes only the runs still to do); method, settings and the env's seed follow
    from the trial's label and seeds."""
    from ray import tune

    return {
        # one string per trial: Tune resolves grid values before the trial's folder is named,
        # the sample_from values only when it starts
        "run": tune.grid_search([_run_key(label, seeds) for label, seeds in plan.trials(runs)]),
        "label": tune.sample_from(_RunPart("label")),
        "seeds": tune.sample_from(_RunPart("seeds")),
        "seed": tune.sample_from(_RunPart("seed")),
        "method": tune.sample_from(_ByLabel({m.label: m.method for m in plan.methods})),
        "settings": tune.sample_from(_ByLabel({m.label: m.settings for m in plan.methods})),
        "env_overrides": tune.sample_from(_ByLabel({m.label: m.env for m in plan.methods})),
        "env": {**plan.env.to_dict(), "seed": tune.sample_from(_RunPart("seed"))},
    }


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


def _trial_name(trial) -> str:
    label, seeds = _split_run(trial.config["run"])
    return f"{label}-{seeds[0]}" if len(seeds) == 1 else f"{label}-seeds{seeds[0]}-{seeds[-1]}"


def _trial_runs(trial) -> list[tuple[str, int]]:
    """The (label, seed) runs of a trial (several in population mode)."""
    label, seeds = _split_run(trial.config["run"])
    return [(label, s) for s in seeds]


def _seeds_text(seeds: Sequence[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]} (population)"


def _trial_dirname(trial) -> str:
    return f"{_trial_name(trial)}_{trial.trial_id}"


def _error_line(trial) -> str:
    """The exception line (`Type: message`) of a trial's last error (the last of its chain
    that carries a message)."""
    text = ""
    try:
        # the driver's copy is written at once; the storage copy only after the next sync
        local = trial.error_file
        text = Path(local).read_text() if local and Path(local).exists() else trial.get_error()
    except Exception:  # noqa: BLE001 - a missing error file must not stop the comparison
        pass
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    found = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b.*", ln)]
    # the last one with a message: RLlib re-raises an env's error as a bare `RuntimeError`
    # from it, so the cause is the line that says what went wrong
    with_message = [ln for ln in found if ":" in ln]
    if with_message or found:
        return (with_message or found)[-1]
    return lines[-1] if lines else "unknown error (no error file)"


def _make_recorder(plan: ComparePlan, out_dir: Path, printer: Callable[[str], None]):
    from ray import tune

    from dsmnas.trainables.tune_trainable import HISTORY_FILE, HISTORY_KEY

    class RunsRecorder(tune.Callback):
        """Rewrites runs.csv (and writes the run's history) whenever a trial reports or
        finally fails; prints one progress line per finished run and a heartbeat."""

        def __init__(self, heartbeat_s: float = 30.0):
            self.rows: dict[tuple[str, int], dict[str, Any]] = {}
            self.heartbeat_s = heartbeat_s
            self.start = self.last_beat = time.monotonic()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            # a population trial reports once per search, each result with its seed
            key = (trial.config["label"], int(result.get("seed", trial.config["seed"])))
            row = self.record_ok(key, result, trial.path)
            tests = "  ".join(
                f"{d} {row[f'{report.TEST_PREFIX}{d}']:.2f}" for d in plan.datasets
            )
            printer(
                f"[{len(self.rows)}/{len(plan.runs)}] {key[0]} seed {key[1]}: {row['arch']}  "
                f"val {row['val_acc']:.2f}" + (f"  test {tests}" if tests else "")
                + f"  ({row['queries']} queries, {row['wall_time_s']:.1f} s wall)"
            )

        def record_ok(self, key, result: dict, trial_path: str | None) -> dict[str, Any]:
            row = {c: result.get(c, math.nan) for c in plan.columns}
            row.update(method=key[0], seed=key[1], status=report.OK, error="")
            self.rows[key] = row
            history = result.get(HISTORY_KEY)
            path = out_dir / "histories" / report.history_name(*key)
            path.parent.mkdir(parents=True, exist_ok=True)
            if history is not None:
                path.write_text(history)
            elif trial_path and Path(trial_path, HISTORY_FILE).exists():
                path.write_bytes(Path(trial_path, HISTORY_FILE).read_bytes())
            self.write()
            return row

        def record_failed(self, key, error: str) -> None:
            row = {c: math.nan for c in plan.columns}
            row.update(method=key[0], seed=key[1], status=report.FAILED, arch="",
                       best_visited_arch="", error=error)
            self.rows[key] = row
            self.write()

        def on_trial_recover(self, iteration, trials, trial, **info):
            label, seeds = _split_run(trial.config["run"])
            printer(
                f"    {label} {_seeds_text(seeds)} failed "
                f"(attempt {trial.num_failures}), retrying: {_error_line(trial)}"
            )

        def on_trial_error(self, iteration, trials, trial, **info):
            label, seeds = _split_run(trial.config["run"])
            error = _error_line(trial)
            attempts = trial.num_failures
            for key in _trial_runs(trial):
                # a resumed population keeps the ok rows of its earlier run
                if self.rows.get(key, {}).get("status") != report.OK:
                    self.record_failed(
                        key, f"{error} ({attempts} attempt{'s' if attempts != 1 else ''})")
            printer(f"[{len(self.rows)}/{len(plan.runs)}] {label} {_seeds_text(seeds)}: "
                    f"FAILED after {attempts} attempt(s): {error}")

        def on_step_end(self, iteration, trials, **info):
            now = time.monotonic()
            if now - self.last_beat < self.heartbeat_s:
                return
            self.last_beat = now
            running = sum(t.status == "RUNNING" for t in trials)
            pending = sum(t.status == "PENDING" for t in trials)
            printer(f"    {len(self.rows)}/{len(plan.runs)} done, {running} running, "
                    f"{pending} pending, {now - self.start:.0f} s elapsed")

        def frame(self) -> pd.DataFrame:
            order = {k: i for i, k in enumerate(plan.runs)}
            rows = sorted(self.rows.items(), key=lambda kv: order.get(kv[0], len(order)))
            frame = pd.DataFrame([r for _, r in rows], columns=plan.columns)
            return frame.astype({"seed": int, "queries": "Int64"})

        def write(self) -> None:
            # write-then-rename: an interrupt never leaves a half-written runs.csv
            tmp = out_dir / "runs.csv.tmp"
            self.frame().to_csv(tmp, index=False)
            os.replace(tmp, out_dir / "runs.csv")

    return RunsRecorder()


def run_compare(
    plan: ComparePlan,
    out_dir: str | Path,
    address: str | None = None,
    max_concurrent: int | None = None,
    retries: int = 2,
    printer: Callable[[str], None] = print,
    reference: str = REFERENCE,
    resources: dict[str, float] | None = None,
    resume: bool = False,
) -> pd.DataFrame:
    """Run the plan through Ray Tune and write every output; returns the runs table.
    Welch t-tests compare every method with `reference`. `resources` is what each trial
    reserves (`{"cpu": C, "gpu": G}`; default one CPU). `resume`: keep the ok rows of an
    earlier run of the same plan in `out_dir` and run only the others (see the module doc)."""
    if not (isinstance(retries, int) and retries >= 0):
        raise ConfigError(f"--retries must be an integer >= 0, got {retries!r}")
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {max_concurrent!r}")
    out = Path(out_dir).expanduser().resolve()
    previous = previous_rows(plan, out, resume)
    todo = [k for k in plan.runs if previous.get(k, {}).get("status") != report.OK]
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAN_FILE).write_text(json.dumps(plan_identity(plan), indent=1) + "\n")
    recorder = _make_recorder(plan, out, printer)
    recorder.rows.update(previous)
    if previous:
        rerun = sum(len(seeds) for _, seeds in plan.trials(todo))
        printer(f"resume: {len(plan.runs) - len(todo)} of {len(plan.runs)} planned runs are "
                f"already ok in {out / 'runs.csv'}; running the other {len(todo)}"
                + (f" (with the rest of their populations: {rerun} searches)"
                   if rerun > len(todo) else ""))
    if todo:
        _tune_runs(plan, out, todo, recorder, address, max_concurrent, retries, printer,
                   resources)
    return _finish(plan, out, recorder, retries, printer, reference)


def _tune_runs(plan, out, todo, recorder, address, max_concurrent, retries, printer,
               resources) -> None:
    from ray import tune

    from dsmnas.trainables.ray_utils import ensure_ray
    from dsmnas.trainables.tune_trainable import with_resources

    try:
        ensure_ray(address=address)
    except ConnectionError as e:
        raise ConfigError(
            f"cannot connect to the Ray cluster at {address!r} ({e}); is it running, and is "
            "RAY_AUTH_MODE=token set when the cluster uses token authentication?"
        ) from None
    name = time.strftime("compare-%Y%m%d-%H%M%S")
    to_run = f" ({len(todo)} to run)" if len(todo) < len(plan.runs) else ""
    trials = plan.trials(todo)
    printer(
        f"compare: {len(plan.methods)} method(s) x {len(plan.seeds)} seed(s) = "
        f"{len(plan.runs)} runs{to_run} in {len(trials)} trial(s) on "
        f"{plan.env.space}/{plan.env.dataset} ({plan.source}, budget {plan.budget_text}); "
        f"retries {retries}; writing {out}"
    )
    if plan.pooled:
        printer(f"population mode for {', '.join(plan.pooled)}: at most {plan.population} "
                "searches per trial, computed as one batch (--population 1: one per trial)")
    tuner = tune.Tuner(
        with_resources(resources),
        param_space=param_space(plan, todo),
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent,
            # a fresh process per trial spends ~5 s importing torch and RLlib; a failed
            # trial's process is replaced anyway
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            storage_path=str(out / "tune"),
            name=name,
            failure_config=tune.FailureConfig(max_failures=retries),
            verbose=0,
            callbacks=[recorder],
        ),
    )
    with _quiet_tune():
        grid = tuner.fit()
    _fill_from_grid(recorder, grid, plan)


def _finish(plan, out, recorder, retries, printer, reference) -> pd.DataFrame:
    """Write runs.csv and the report over every row (earlier ones of a resume included)."""
    runs = recorder.frame()
    recorder.write()
    missing = [k for k in plan.runs if k not in recorder.rows]
    notes = [f"Data: {plan.source}; reward {plan.env.dataset} validation accuracy; budget "
             f"{plan.budget_text} per run; seeds {plan.seeds[0]}–{plan.seeds[-1]}; "
             f"each failed run retried up to {retries} time(s)."]
    if plan.pooled:
        groups = population_groups(plan.seeds, plan.population)
        notes.append(
            f"Population mode for {', '.join(plan.pooled)}: the seeds ran in populations of "
            + ", ".join(f"{g[0]}–{g[-1]}" for g in groups)
            + " (one batch per population, each search with its own parameters, Adam state, "
              "baseline, clock and random stream; `--population 1` runs them one by one). "
              "Wall time per run is its population's divided by its size.")
    if missing:
        notes.append(
            f"**Incomplete: {len(missing)} of {len(plan.runs)} planned runs did not finish** "
            f"(interrupted): " + ", ".join(f"{m} seed {s}" for m, s in missing) + "."
        )
    if (runs["status"] == report.FAILED).any():
        notes.append(f"Full tracebacks of failed runs: `{out / 'tune'}/*/*/error.txt`.")
    paths = report.write_report(
        runs,
        report.load_histories(runs, out / "histories"),
        out,
        reference=reference,
        title=f"{plan.env.space} / {plan.env.dataset}: "
              + ", ".join(m.label for m in plan.methods),
        notes=notes,
    )
    n_failed = int((runs["status"] == report.FAILED).sum())
    printer(
        f"{len(runs) - n_failed} finished, {n_failed} failed"
        + (f", {len(missing)} not run (interrupted)" if missing else "")
        + f"; wrote {out}/runs.csv, histories/, " + ", ".join(p.name for p in paths)
    )
    return runs


@contextlib.contextmanager
def _quiet_tune():
    """The progress display is RunsRecorder's lines. Tune's own reporter prints every failed
    attempt in full whatever `verbose` says, and Tune logs "Trials did not complete: [...]";
    both are off while the comparison runs (the tracebacks stay in each trial's error.txt)."""
    env = {"TUNE_PRINT_ALL_TRIAL_ERRORS": "0", "RAY_AIR_NEW_OUTPUT": "0"}
    saved = {k: os.environ.get(k) for k in env}
    tune_log = logging.getLogger("ray.tune.tune")
    level = tune_log.level
    for k, v in env.items():
        os.environ.setdefault(k, v)
    tune_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        tune_log.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _fill_from_grid(recorder, grid, plan: ComparePlan) -> None:
    """Runs the callback did not see (should not happen) are taken from Tune's results."""
    for res in grid:
        cfg = res.config or {}
        for seed in cfg.get("seeds") or [cfg.get("seed", -1)]:
            key = (cfg.get("label"), int(seed))
            if key in recorder.rows or key not in plan.runs:
                continue
            if res.error is not None:
                lines = [ln.strip() for ln in str(res.error).splitlines() if ln.strip()]
                recorder.record_failed(key, lines[-1] if lines else "unknown error")
            elif res.metrics and res.metrics.get("seed") == seed and "arch" in res.metrics:
                recorder.record_ok(key, res.metrics, res.path)
