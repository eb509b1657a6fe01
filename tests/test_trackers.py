"""`--tracker mlflow|wandb` (`experiments.trackers`): names and missing packages refused
before Ray starts, and one small `dsmnas compare` whose trials' reports reach MLflow's SQLite
store and W&B's offline runs in the output folder as series with the values of Tune's own
progress files. Each tracker's test skips when its package (the extra) is not installed."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import re
import struct
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from dsmnas.envs.errors import ConfigError
from dsmnas.experiments import trackers
from dsmnas.experiments.cli import main
from dsmnas.experiments.settings import CompareSettings
from dsmnas.experiments.sweep import resolve_settings
from dsmnas.trainables.live import OBJECTIVE, TIME_ATTR

INSTALLED = [name for name in trackers.TRACKERS
             if all(importlib.util.find_spec(m) for m in trackers.TRACKERS[name].modules)]
SERIES = (TIME_ATTR, OBJECTIVE, "queries")
"""Figures of every report whose series each tracker must hold, step by step."""


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_names_are_items_or_comma_separated_each_once_in_order(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())
    assert trackers.parse_trackers(["wandb,mlflow", " mlflow "]) == ("wandb", "mlflow")
    assert trackers.parse_trackers("mlflow") == ("mlflow",)
    assert trackers.parse_trackers(()) == ()
    assert CompareSettings(methods="dsm", trackers=["mlflow,wandb"]).trackers == (
        "mlflow", "wandb")
    assert resolve_settings({"trackers": "wandb, mlflow"}).trackers == ("wandb", "mlflow")


@pytest.mark.parametrize("argv, missing, message", [
    (["--tracker", "tensorboard"], None, "unknown tracker 'tensorboard'; allowed: mlflow, wandb"),
    (["--tracker", "mlflow,nope"], None, "unknown tracker 'nope'; allowed: mlflow, wandb"),
    (["--tracker", "wandb"], "wandb",
     "tracker 'wandb' needs the package 'wandb', which is not installed: "
     "pip install 'dsmnas[wandb]'"),
    (["--tracker", "mlflow"], "alembic",
     "tracker 'mlflow' needs the package 'alembic', which is not installed: "
     "pip install 'dsmnas[mlflow]'"),
])
def test_bad_tracker_is_one_line_and_exit_2_before_ray_starts(argv, missing, message, capsys,
                                                              monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr("dsmnas.trainables.ray_utils.ensure_ray", no_ray)
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == missing else find_spec(name, *a))
    for command in (["compare", "--methods", "dsm"], ["ablate", "update"], ["sweep"]):
        assert exit_code([*command, *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, (command, err)
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_settings({"trackers": argv[1].split(",")})


@pytest.fixture(scope="module")
def tracked(nb201_data, tmp_path_factory, ray_session):
    """dsm and random, seed 0, one trial each, logged to every installed tracker; with each
    trial's Tune progress file by trial name."""
    if not INSTALLED:
        pytest.skip("neither mlflow nor wandb is installed (the extras dsmnas[mlflow], [wandb])")
    out = tmp_path_factory.mktemp("trackers") / "tracked"
    flags = [a for name in INSTALLED for a in ("--tracker", name)]
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["compare", "--methods", "dsm,random", "--seeds", "1", "--population", "1",
                   *nb201_data.args, "--budget", str(nb201_data.budget_s(25_000)),
                   "--out", str(out), *flags])
    progress = {p.parent.name.split("_")[0]: pd.read_csv(p)
                for p in (out / "tune").glob("*/*/progress.csv")}
    return SimpleNamespace(rc=rc, out=out, progress=progress)


def _expected(frame: pd.DataFrame, key: str) -> list[tuple[int, float]]:
    """(step, value) of `key` in Tune's progress rows that have it; the step is
    `timesteps_total`, the budget spent."""
    rows = frame[frame[key].notna()]  # NaN: not logged (W&B), or not compared (MLflow)
    return [(int(s), float(v)) for s, v in zip(rows["timesteps_total"], rows[key])]


def _assert_same_series(got, expected, what) -> None:
    """The same steps, and the same values to float precision (a float passed through a
    tracker's text or database)."""
    assert len(expected) >= 10, what
    assert [s for s, _ in got] == [s for s, _ in expected], what
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-12), what


def test_mlflow_store_has_a_run_per_trial_with_every_report_as_a_series(tracked):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    assert tracked.rc == 0
    client = MlflowClient(f"sqlite:///{tracked.out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tracked.out.name)
    assert experiment.artifact_location == (tracked.out / "mlartifacts").as_uri()
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == set(tracked.progress) == {"dsm-0", "random-0"}
    for name, run in runs.items():
        assert run.info.status == "FINISHED"
        frame = tracked.progress[name]
        assert (frame["report"] == "progress").sum() >= 10
        for key in SERIES:
            history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)
                       if not math.isnan(m.value)]
            _assert_same_series(history, _expected(frame, key), (name, key))
        assert run.data.params["label"] == name.split("-")[0]


def _wandb_records(path: Path):
    """The records of a W&B run file (`run-ID.wandb`): LevelDB's log format (32 KiB blocks of
    chunks, each with a 7-byte header: CRC32, length, type 1 full / 2 first / 3 middle / 4
    last) after W&B's 7-byte header, each record a `wandb_internal_pb2.Record`."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B"
    pos, record = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        record += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            parsed = wandb_internal_pb2.Record()
            parsed.ParseFromString(record)
            yield parsed
            record = b""


def test_wandb_offline_runs_hold_every_report_as_history(tracked):
    pytest.importorskip("wandb")
    assert tracked.rc == 0
    runs = sorted((tracked.out / "wandb").glob("offline-run-*"))
    assert len(runs) == len(tracked.progress) == 2
    by_name = {}
    for run in runs:
        (run_file,) = run.glob("run-*.wandb")
        records = list(_wandb_records(run_file))
        (info,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert info.project == "dsmnas" and info.run_group == tracked.out.name
        by_name[info.display_name] = [
            {item.key or "/".join(item.nested_key): json.loads(item.value_json)
             for item in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]
    assert set(by_name) == set(tracked.progress)
    for name, history in by_name.items():
        frame = tracked.progress[name]
        assert len(history) == len(frame) >= 11
        for key in SERIES:
            logged = [(row["timesteps_total"], row[key]) for row in history
                      if isinstance(row.get(key), (int, float)) and not math.isnan(row[key])]
            _assert_same_series(logged, _expected(frame, key), (name, key))
