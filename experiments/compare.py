"""`dsmnas compare`: every (method, seed) as one Ray Tune trial, then the report.

The plan (`experiments.plan.plan_compare`) is checked before Ray starts: method names, `--set`
keys, the env settings and the data (one env is built and reset). `run_compare` runs the grid
method x seed through `tune.Tuner`; a `RunsRecorder` callback (`experiments.recorder`)
rewrites `runs.csv` and the histories as each trial finishes or finally fails, so an
interrupted comparison keeps every finished run. At the end `experiments.report` writes the
summaries and plots.

Output folder: `runs.csv`, `plan.json` (what was planned: methods, env settings, budget;
checked on `--resume`), `histories/<method>-<seed>.csv`, `summary.md`, `summary.csv`,
`anytime_val.png`, `test_acc.png` (with `--objectives` also `fronts/<method>-<seed>.csv`,
`hypervolume_val.png`, `fronts.png` and, where the space knows it, `true_front.csv`;
`envs.objectives`, `experiments.report_fronts`), and `tune/` (Tune's own trial folders, with
the full traceback of every failed attempt in `error.txt`).

Resuming (`resume=True`, `--resume`): a folder that already holds `runs.csv` and `plan.json`
of the same plan keeps its ok rows; only the failed and missing (label, seed) runs are run,
and the report is written over all rows. Without it, an existing `runs.csv` is an error, so
results are never overwritten by accident.

Importing this module imports no Ray (Ray is imported when `run_compare` runs the trials).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from dsmnas.envs.errors import ConfigError
from dsmnas.experiments import report
from dsmnas.experiments.trackers import parse_trackers, tracker_callbacks
from dsmnas.trainables.live import LiveSettings
# plan_compare is re-exported for `from dsmnas.experiments.compare import plan_compare,
# run_compare` (the Python API in the docs), split_set for code written against 0.3
from dsmnas.experiments.plan import (  # noqa: F401
    PLAN_FILE,
    REFERENCE,
    ComparePlan,
    plan_compare,
    plan_identity,
    population_groups,
    previous_rows,
    run_key,
    split_run,
    split_set,
)


class _ByLabel:
    """`tune.sample_from` callable: the value for the trial's method label (picklable)."""

    def __init__(self, table: dict[str, Any]):
        self.table = table

    def __call__(self, spec) -> Any:
        return self.table[split_run(spec.config["run"])[0]]


class _RunPart:
    """`tune.sample_from` callable: the label ("label"), the seeds ("seeds") or the first
    seed ("seed", the env's) of the trial's run."""

    def __init__(self, part: str):
        self.part = part

    def __call__(self, spec) -> Any:
        label, seeds = split_run(spec.config["run"])
        return {"label": label, "seeds": seeds, "seed": seeds[0]}[self.part]


def param_space(plan: ComparePlan, runs: Sequence[tuple[str, int]] | None = None,
                live: LiveSettings = LiveSettings()) -> dict[str, Any]:
    """One grid point per trial of `plan.trials(runs)` (default: all of the plan's runs; a
    resume passes only the runs still to do); method, settings and the env's seed follow
    from the trial's label and seeds; `live`: how the trials report as they search."""
    from ray import tune

    return {
        # one string per trial: Tune resolves grid values before the trial's folder is named,
        # the sample_from values only when it starts
        "run": tune.grid_search([run_key(label, seeds) for label, seeds in plan.trials(runs)]),
        "label": tune.sample_from(_RunPart("label")),
        "seeds": tune.sample_from(_RunPart("seeds")),
        "seed": tune.sample_from(_RunPart("seed")),
        "method": tune.sample_from(_ByLabel({m.label: m.method for m in plan.methods})),
        "settings": tune.sample_from(_ByLabel({m.label: m.settings for m in plan.methods})),
        "env_overrides": tune.sample_from(_ByLabel({m.label: m.env for m in plan.methods})),
        "env": {**plan.env.to_dict(), "seed": tune.sample_from(_RunPart("seed"))},
        "live": dataclasses.asdict(live),
        "columns": list(plan.columns),
    }


class _TrialName:
    """Tune's trial name (`label-seed`, or `label-seedsA-B` for a population) and, with
    `folder`, its folder name (the name and the trial id); `run_of`: (label, seeds) of a
    trial's config."""

    def __init__(self, run_of: Callable[[dict], tuple[str, list[int]]], folder: bool = False):
        self.run_of, self.folder = run_of, folder

    def __call__(self, trial) -> str:
        label, seeds = self.run_of(trial.config)
        name = f"{label}-{seeds[0]}" if len(seeds) == 1 else f"{label}-seeds{seeds[0]}-{seeds[-1]}"
        return f"{name}_{trial.trial_id}" if self.folder else name


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
    live: LiveSettings = LiveSettings(),
    scheduler=None,
    trials=None,
    trackers: Sequence[str] = (),
) -> pd.DataFrame:
    """Run the plan through Ray Tune and write every output; returns the runs table.
    Welch t-tests compare every method with `reference`. `resources` is what each trial
    reserves (`{"cpu": C, "gpu": G}`; default one CPU). `resume`: keep the ok rows of an
    earlier run of the same plan in `out_dir` and run only the others (see the module doc).
    `live`: how often trials report and checkpoint while they search (`trainables.live`;
    it changes no result, so a resume may change it). `scheduler`: a Tune trial scheduler
    (a sweep's ASHA); the runs of a trial it stops are `stopped` rows, kept by a resume.
    `trials`: a sweep whose search algorithm draws the configurations
    (`experiments.tune_search.SearcherTrials`) instead of the plan's grid of runs; the plan's
    methods are then replaced by the configurations drawn (no resume). `trackers`: also log
    every report to these (`experiments.trackers`: mlflow, wandb)."""
    if not (isinstance(retries, int) and retries >= 0):
        raise ConfigError(f"--retries must be an integer >= 0, got {retries!r}")
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {max_concurrent!r}")
    trackers = parse_trackers(trackers)
    out = Path(out_dir).expanduser().resolve()
    if trials is not None:
        return _searcher_runs(plan, out, trials, address, max_concurrent, retries, printer,
                              reference, resources, resume, live, scheduler, trackers)
    previous = previous_rows(plan, out, resume)
    done = (report.OK, report.STOPPED)
    todo = [k for k in plan.runs if previous.get(k, {}).get("status") not in done]
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAN_FILE).write_text(json.dumps(plan_identity(plan), indent=1) + "\n")
    # looked up when called, not imported with this module: the recorder imports Ray
    from dsmnas.experiments.recorder import RunsRecorder

    recorder = RunsRecorder(plan, out, printer)
    recorder.rows.update(previous)
    if previous:
        rerun = sum(len(seeds) for _, seeds in plan.trials(todo))
        printer(f"resume: {len(plan.runs) - len(todo)} of {len(plan.runs)} planned runs are "
                f"already ok in {out / 'runs.csv'}; running the other {len(todo)}"
                + (f" (with the rest of their populations: {rerun} searches)"
                   if rerun > len(todo) else ""))
    if todo:
        trials = plan.trials(todo)
        printer(
            f"compare: {len(plan.methods)} method(s) x {len(plan.seeds)} seed(s) = "
            f"{len(plan.runs)} runs" + (f" ({len(todo)} to run)" if len(todo) < len(plan.runs)
                                        else "")
            + f" in {len(trials)} trial(s) on {plan.env.space}/{plan.env.dataset} "
            f"({plan.source}, budget {plan.budget_text}); retries {retries}; writing {out}")
        if plan.pooled:
            pooled = (", ".join(plan.pooled) if len(plan.pooled) <= 6
                      else f"all {len(plan.pooled)} methods")
            printer(f"population mode for {pooled}: at most {plan.population} searches per "
                    "trial, computed as one batch (--population 1: one per trial)")
        _tune_runs(out, recorder, address, retries, resources, scheduler, trackers,
                   param_space=param_space(plan, todo, live),
                   tune_config=dict(max_concurrent_trials=max_concurrent))
    return _finish(plan, out, recorder, retries, printer, reference)


def _searcher_runs(plan, out, trials, address, max_concurrent, retries, printer, reference,
                   resources, resume, live, scheduler, trackers) -> pd.DataFrame:
    """`run_compare` of a sweep whose search algorithm draws the configurations."""
    from dsmnas.experiments.recorder import RunsRecorder

    if resume:
        raise ConfigError(f"--resume is not available with --search-alg "
                          f"{trials.plan.settings.search_alg}: run the sweep again into a new "
                          "--out (its finished runs are in the old folder's runs.csv)")
    if (out / "runs.csv").exists():
        raise ConfigError(f"{out / 'runs.csv'} exists: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAN_FILE).write_text(json.dumps(
        {**plan_identity(plan), "search": trials.identity()}, indent=1) + "\n")
    recorder = RunsRecorder(plan, out, printer, run_of=trials.run_of, total=trials.total_runs)
    s = trials.plan.settings
    printer(f"sweep: {s.search_alg} draws {trials.num_samples} configuration(s), each one "
            f"trial of {len(plan.seeds)} seed(s) on {plan.env.space}/{plan.env.dataset} "
            f"({plan.source}, budget {plan.budget_text}); retries {retries}; writing {out}")
    grid = _tune_runs(out, recorder, address, retries, resources, scheduler, trackers,
                      param_space=trials.param_space(live), trainable=trials.trainable,
                      tune_config=dict(max_concurrent_trials=max_concurrent,
                                       search_alg=trials.search_alg(printer),
                                       num_samples=trials.num_samples))
    # the report covers the configurations drawn, in the order their trials were made
    methods = trials.record(grid)
    labels = tuple(m.label for m in methods)
    plan = dataclasses.replace(plan, methods=methods, pooled=labels)
    reference = reference if reference in labels or not labels else labels[0]
    recorder.plan = plan
    return _finish(plan, out, recorder, retries, printer, reference)


def _tune_runs(out, recorder, address, retries, resources, scheduler, trackers, param_space,
               tune_config, trainable=None):
    """Run the trials through `tune.Tuner`, `recorder` recording them; the ResultGrid."""
    from ray import tune

    from dsmnas.trainables.ray_utils import ensure_ray
    from dsmnas.trainables.tune_trainable import search_trainable, with_resources

    ensure_ray(address=address)
    name = time.strftime("compare-%Y%m%d-%H%M%S")
    tuner = tune.Tuner(
        with_resources(resources, trainable or search_trainable),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            **tune_config,
            scheduler=scheduler,
            # a fresh process per trial spends ~5 s importing torch and RLlib; a failed
            # trial's process is replaced anyway
            reuse_actors=True,
            trial_name_creator=_TrialName(recorder.run_of),
            trial_dirname_creator=_TrialName(recorder.run_of, folder=True),
        ),
        run_config=tune.RunConfig(
            storage_path=str(out / "tune"),
            name=name,
            failure_config=tune.FailureConfig(max_failures=retries),
            verbose=0,
            callbacks=[recorder, *tracker_callbacks(trackers, out)],
        ),
    )
    with _quiet_tune():
        grid = tuner.fit()
    _fill_from_grid(recorder, grid)
    return grid


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
    histories = report.load_histories(runs, out / "histories")
    title = f"{plan.env.space} / {plan.env.dataset}: " + ", ".join(m.label for m in plan.methods)
    if plan.objectives is None:
        paths = report.write_report(runs, histories, out, reference=reference, title=title,
                                    notes=notes)
    else:
        from dsmnas.experiments import report_fronts, report_objectives

        # the report reads the true front from the folder, as it reads the runs' fronts
        truth = report_fronts.write_true_front(plan.true_front, plan.objectives, out)
        paths = ([truth] if truth else []) + report_objectives.write_report(
            runs, histories, out, plan.objectives, dict(plan.env.limits or ()),
            reference=reference, title=title, notes=notes,
            fronts=report_fronts.load_fronts(runs, out / report.FRONTS),
            true_front=report_fronts.load_true_front(out, plan.objectives))
    n_failed = int((runs["status"] == report.FAILED).sum())
    n_stopped = int((runs["status"] == report.STOPPED).sum())
    printer(
        f"{len(runs) - n_failed - n_stopped} finished, "
        + (f"{n_stopped} stopped by the scheduler, " if n_stopped else "") + f"{n_failed} failed"
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


def _fill_from_grid(recorder, grid) -> None:
    """Runs the callback did not see (should not happen) are taken from Tune's results."""
    for res in grid:
        if not res.config:
            continue
        label, seeds = recorder.run_of(res.config)
        for seed in seeds:
            key = (label, int(seed))
            if key in recorder.rows:
                continue
            if res.error is not None:
                lines = [ln.strip() for ln in str(res.error).splitlines() if ln.strip()]
                recorder.record_failed(key, lines[-1] if lines else "unknown error")
            elif res.metrics and res.metrics.get("seed") == seed and "arch" in res.metrics:
                recorder.record_ok(key, res.metrics, res.path)
