"""`RunsRecorder`: the Tune callback that records a comparison as its trials finish.

It keeps one row per (label, seed) run of a `ComparePlan`, rewrites `runs.csv` after every
result or final failure (write-then-rename, so an interrupted comparison keeps every finished
run and never a half-written file), writes each finished run's history to
`histories/<label>-<seed>.csv` (and, with `--objectives`, its front to
`fronts/<label>-<seed>.csv`), and prints one progress line per finished or failed run and a
heartbeat. A population trial reports once per search, each result with its seed, and fails
as a whole. Imports Ray (a Tune callback is a `tune.Callback`); the plan does not
(`experiments.plan`).
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from ray import tune

from dsmnas.experiments import report
from dsmnas.experiments.plan import ComparePlan, split_run
from dsmnas.trainables.tune_trainable import FRONT_KEY, HISTORY_FILE, HISTORY_KEY


class RunsRecorder(tune.Callback):
    """Rewrites runs.csv (and writes the run's history) whenever a trial reports or
    finally fails; prints one progress line per finished run and a heartbeat."""

    def __init__(self, plan: ComparePlan, out_dir: Path,
                 printer: Callable[[str], None] = print, heartbeat_s: float = 30.0,
                 run_of: Callable[[dict], tuple[str, list[int]]] | None = None,
                 total: int | None = None):
        self.plan = plan
        self.run_of = run_of or _run_of
        """(label, seeds) of a trial's config: the plan's run key, or what a sweep's search
        algorithm drew."""
        self.total = len(plan.runs) if total is None else total
        """Runs expected, for the progress lines."""
        self.out_dir = Path(out_dir)
        self.printer = printer
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        self.heartbeat_s = heartbeat_s
        self.start = self.last_beat = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("report", "result") != "result":
            return  # a progress report (trainables.live): Tune's own files keep it
        # a population trial reports once per search, each result with its seed
        label, seeds = self.run_of(trial.config)
        key = (label, int(result.get("seed", seeds[0])))
        row = self.record_ok(key, result, trial.path)
        tests = "  ".join(
            f"{d} {row[f'{report.TEST_PREFIX}{d}']:.2f}" for d in self.plan.datasets
        )
        self.printer(
            f"[{len(self.rows)}/{self.total}] {key[0]} seed {key[1]}: {row['arch']}  "
            f"val {row['val_acc']:.2f}" + (f"  test {tests}" if tests else "")
            + f"  ({row['queries']} queries, {row['wall_time_s']:.1f} s wall)"
        )

    def record_ok(self, key, result: dict, trial_path: str | None) -> dict[str, Any]:
        row = {c: result.get(c, math.nan) for c in self.plan.columns}
        row.update(method=key[0], seed=key[1], status=report.OK, error="")
        self.rows[key] = row
        history = result.get(HISTORY_KEY)
        path = self.out_dir / "histories" / report.history_name(*key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if history is not None:
            path.write_text(history)
        elif trial_path and Path(trial_path, HISTORY_FILE).exists():
            path.write_bytes(Path(trial_path, HISTORY_FILE).read_bytes())
        front = result.get(FRONT_KEY)
        if front is not None:
            path = self.out_dir / report.FRONTS / report.history_name(*key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(front)
        self.write()
        return row

    def record_failed(self, key, error: str) -> None:
        row = {c: math.nan for c in self.plan.columns}
        row.update(method=key[0], seed=key[1], status=report.FAILED, arch="",
                   best_visited_arch="", error=error)
        self.rows[key] = row
        self.write()

    def record_stopped(self, key, last: dict) -> None:
        """A run whose trial a scheduler stopped: the budget it spent and its best validation
        so far (the trial's mean) are kept; it is never ranked as finished."""
        row = {c: math.nan for c in self.plan.columns}
        spent, fraction = last.get("budget_spent", math.nan), last.get("budget_fraction", math.nan)
        row.update(method=key[0], seed=key[1], status=report.STOPPED, arch="",
                   best_visited_arch="", queries=round(last.get("queries", math.nan))
                   if last.get("queries") == last.get("queries") else math.nan,
                   sim_time_s=spent if self.plan.budget_s is not None else math.nan,
                   error=f"stopped by the scheduler at {fraction:.0%} of the budget (best val "
                         f"so far {last.get('best_val_acc', math.nan):.2f}, the trial's mean)")
        self.rows[key] = row
        self.write()

    def on_trial_complete(self, iteration, trials, trial, **info):
        # a trial that ends without its final rows was stopped by the scheduler
        label, seeds = self.run_of(trial.config)
        stopped = [(label, s) for s in seeds if (label, s) not in self.rows
                   or self.rows[(label, s)]["status"] != report.OK]
        if not stopped or trial.last_result.get("report") == "result":
            return
        for key in stopped:
            self.record_stopped(key, trial.last_result)
        self.printer(f"[{len(self.rows)}/{self.total}] {label} {_seeds_text(seeds)}: "
                     f"stopped at {trial.last_result.get('budget_fraction', math.nan):.0%} of "
                     f"the budget (best val {trial.last_result.get('best_val_acc', math.nan):.2f})")

    def on_trial_recover(self, iteration, trials, trial, **info):
        label, seeds = self.run_of(trial.config)
        self.printer(
            f"    {label} {_seeds_text(seeds)} failed "
            f"(attempt {trial.num_failures}), retrying: {_error_line(trial)}"
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        label, seeds = self.run_of(trial.config)
        error = _error_line(trial)
        attempts = trial.num_failures
        for key in [(label, s) for s in seeds]:
            # a resumed population keeps the ok rows of its earlier run
            if self.rows.get(key, {}).get("status") != report.OK:
                self.record_failed(
                    key, f"{error} ({attempts} attempt{'s' if attempts != 1 else ''})")
        self.printer(f"[{len(self.rows)}/{self.total}] {label} {_seeds_text(seeds)}: "
                     f"FAILED after {attempts} attempt(s): {error}")

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self.last_beat < self.heartbeat_s:
            return
        self.last_beat = now
        running = sum(t.status == "RUNNING" for t in trials)
        pending = sum(t.status == "PENDING" for t in trials)
        self.printer(f"    {len(self.rows)}/{self.total} done, {running} running, "
                     f"{pending} pending, {now - self.start:.0f} s elapsed")

    def frame(self) -> pd.DataFrame:
        order = {k: i for i, k in enumerate(self.plan.runs)}
        rows = sorted(self.rows.items(), key=lambda kv: order.get(kv[0], len(order)))
        frame = pd.DataFrame([r for _, r in rows], columns=self.plan.columns)
        return frame.astype({"seed": int, "queries": "Int64"})

    def write(self) -> None:
        # write-then-rename: an interrupt never leaves a half-written runs.csv
        tmp = self.out_dir / "runs.csv.tmp"
        self.frame().to_csv(tmp, index=False)
        os.replace(tmp, self.out_dir / "runs.csv")


def _run_of(config: dict) -> tuple[str, list[int]]:
    return split_run(config["run"])


def _seeds_text(seeds: Sequence[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]} (population)"


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
