"""Live results and checkpoints inside Tune trials (`trainables.live`): the reporter's
milestones and figures on hand-made searches, the reports of real trials (Tune's progress
files and TensorBoard events), and a trial whose worker is killed mid-search resuming from
its checkpoint with the history of an uninterrupted search."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.records import QueryRecord
from dsmnas.trainables.live import (OBJECTIVE, TIME_ATTR, LiveSettings, SearchState,
                                    TrialReporter, clock_spent)


def _records(rewards, accepted):
    return [QueryRecord(step=i, arch="a", val_acc=90.0, cost_s=1.0, sim_time_s=float(i),
                        reward=r, accepted=a) for i, (r, a) in enumerate(zip(rewards, accepted))]


def test_reports_at_milestones_of_the_budget_with_checkpoints_every_n():
    sent = []
    reporter = TrialReporter(LiveSettings(reports=4, checkpoint_reports=2),
                             report=lambda m, checkpoint=None: sent.append((m, checkpoint)))
    history = _records([1.0, -1.0, 2.0, 4.0], [True, False, True, False])
    saved = []

    def state(spent):
        return [SearchState(spent, 100.0, 91.0, history)]

    assert not reporter.progress(state(24.9))           # milestone 1 is 25 % of the budget
    assert reporter.progress(state(25.0), entropy=1.5)  # report 1: no checkpoint
    assert not reporter.progress(state(40.0))
    # report 2 carries a checkpoint (save is called; the fake report gets the Checkpoint)
    assert reporter.progress(state(80.0), save=lambda folder: saved.append(folder))
    assert reporter.progress(state(80.0))               # report 3: the milestone 75 % passed
    assert not reporter.progress(state(80.0))           # caught up
    assert [m["report"] for m, _ in sent] == ["progress"] * 3 and len(saved) == 1
    assert [c is not None for _, c in sent] == [False, True, False]
    first = sent[0][0]
    assert first[TIME_ATTR] == 25.0 and first["timesteps_total"] == 25
    assert first["budget_fraction"] == 0.25 and first[OBJECTIVE] == 91.0
    assert first["queries"] == 4 and first["new_centers"] == 2
    assert first["mean_reward"] == 1.5 and first["policy_entropy"] == 1.5
    assert math.isnan(sent[1][0]["mean_reward"])  # no new query since the last report


def test_a_population_reports_means_and_spreads_over_its_searches():
    sent = []
    reporter = TrialReporter(LiveSettings(reports=2),
                             report=lambda m, checkpoint=None: sent.append(m))
    a = SearchState(60.0, 100.0, 90.0, _records([1.0], [True]))
    b = SearchState(40.0, 100.0, 92.0, _records([3.0, 5.0], [False, False]), done=True)
    assert reporter.progress([a, b])
    m = sent[0]
    assert m[TIME_ATTR] == 50.0 and m[OBJECTIVE] == 91.0
    assert m["best_val_acc_std"] == pytest.approx(math.sqrt(2.0))
    assert m["queries"] == 1.5 and m["new_centers"] == 0.5 and m["mean_reward"] == 3.0
    assert m["searches_done"] == 1
    reporter.final([a, b], [{"seed": 0}, {"seed": 1}])
    assert [(r["report"], r["seed"]) for r in sent[1:]] == [("result", 0), ("result", 1)]


def test_budget_in_queries_is_counted_in_charged_queries():
    state = {"budget_s": None, "budget_queries": 10_000, "sim_time_s": 0.0, "queries": 120,
             "cache_hits": 20}
    assert clock_spent(state) == (100.0, 10_000.0)
    assert clock_spent({**state, "budget_s": 500.0, "sim_time_s": 12.5}) == (12.5, 500.0)


@pytest.mark.parametrize("values, message", [
    ({"reports": -1}, "reports must be an integer >= 0, got -1"),
    ({"checkpoint_reports": 1.5}, "checkpoint_reports must be an integer >= 0, got 1.5"),
])
def test_bad_live_settings(values, message):
    with pytest.raises(ConfigError, match=message):
        LiveSettings(**values)


def _progress(out: Path) -> dict[str, pd.DataFrame]:
    return {p.parent.name.split("_")[0]: pd.read_csv(p)
            for p in (out / "tune").glob("*/*/progress.csv")}


def test_trials_report_as_they_search_to_tunes_files_and_tensorboard(nb201_data, tmp_path,
                                                                    ray_session):
    from dsmnas.experiments.compare import run_compare
    from dsmnas.experiments.plan import plan_compare

    out = tmp_path / "cmp"
    budget = nb201_data.budget_s(25_000)  # the paper's budget
    plan = plan_compare("dsm,random", 1, env={"table": nb201_data.table, "budget_s": budget},
                        population=1)
    runs = run_compare(plan, out, printer=lambda line: None)
    assert (runs["status"] == "ok").all()
    progress = _progress(out)
    assert set(progress) == {"dsm-0", "random-0"}
    for name, frame in progress.items():
        live = frame[frame["report"] == "progress"]
        assert len(live) >= 10, (name, len(live))
        assert live[TIME_ATTR].is_monotonic_increasing and live[TIME_ATTR].iloc[-1] <= budget
        assert live[OBJECTIVE].is_monotonic_increasing
        final = frame[frame["report"] == "result"]
        assert len(final) == 1 and final["val_acc"].iloc[0] == runs.set_index("method").loc[
            name.split("-")[0], "val_acc"]
    dsm = progress["dsm-0"]
    assert (dsm.loc[dsm["report"] == "progress", "policy_entropy"] > 0).all()
    events = list((out / "tune").glob("*/dsm-0_*/events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 1000


@pytest.mark.parametrize("seeds", [1, 3], ids=["lone", "population"])
def test_a_killed_trial_resumes_from_its_checkpoint_with_the_uninterrupted_history(
        seeds, nb201_data, tmp_path, ray_session):
    """A lone search, and a population of 3 as one trial: each member's history is the
    uninterrupted run's, byte for byte."""
    from dsmnas.experiments import recorder
    from dsmnas.experiments.compare import run_compare
    from dsmnas.experiments.plan import plan_compare
    from dsmnas.trainables.live import LiveSettings

    env = {"table": nb201_data.table, "budget_s": nb201_data.budget_s(25_000)}
    live = LiveSettings(reports=20, checkpoint_reports=3)
    plan = plan_compare("dsm", seeds, first_seed=3, env=env, population=seeds)
    calm = run_compare(plan, tmp_path / "calm", printer=lambda line: None, live=live)
    assert (calm["status"] == "ok").all()

    killed = []

    class Killer(recorder.RunsRecorder):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            # the first progress report after a checkpoint was made: kill the trial's worker
            if not killed and result.get("report") == "progress" and trial.checkpoint:
                killed.append(int(result["pid"]))
                os.kill(killed[0], signal.SIGKILL)
            super().on_trial_result(iteration, trials, trial, result, **info)

    real = recorder.RunsRecorder
    recorder.RunsRecorder = Killer  # run_compare looks it up when it runs
    lines = []
    try:
        runs = run_compare(plan, tmp_path / "killed", printer=lines.append, live=live,
                           retries=2)
    finally:
        recorder.RunsRecorder = real
    assert killed and any("retrying" in line for line in lines), lines
    assert (runs["status"] == "ok").all()
    for seed in range(3, 3 + seeds):
        name = f"dsm-{seed}.csv"
        assert ((tmp_path / "killed" / "histories" / name).read_bytes()
                == (tmp_path / "calm" / "histories" / name).read_bytes()), name
    # it went on from its checkpoint: no milestone before the checkpoint was reported twice
    (frame,) = _progress(tmp_path / "killed").values()
    live_rows = frame[frame["report"] == "progress"]
    assert live_rows["budget_fraction"].iloc[0] < 0.1
    assert (live_rows["budget_fraction"] < 0.1).sum() == 1, live_rows["budget_fraction"].tolist()
    assert len(live_rows) >= 10


def test_each_search_of_a_trial_reports_its_own_milestones():
    """dsm-plus runs a source and then a target search in one trial: both report."""
    sent = []
    reporter = TrialReporter(LiveSettings(reports=2),
                             report=lambda m, checkpoint=None: sent.append(m))
    for _ in range(2):
        with reporter.restored() as folder:  # no checkpoint outside Tune
            assert folder is None
        for spent in (50.0, 100.0):
            reporter.progress([SearchState(spent, 100.0, 90.0, [])])
    assert [m["budget_fraction"] for m in sent] == [0.5, 1.0, 0.5, 1.0]
    assert reporter.searches == 2
