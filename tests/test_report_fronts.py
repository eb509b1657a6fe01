"""The methods' fronts plot (`experiments.report_fronts`): attainment surfaces on hand-made
fronts, the normalisation's inverse, the panels of 2 and 3 objectives, the true front's file,
and `fronts.png` with `true_front.csv` from `dsmnas compare --objectives` on the embedded
NAS-Bench-201 data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("moocore", reason="needs the extra mo (moocore)")

from dsmnas.envs import EnvConfig  # noqa: E402
from dsmnas.envs.benchmarks import make_benchmark  # noqa: E402
from dsmnas.envs.objectives import Objectives, true_front  # noqa: E402
from dsmnas.experiments import report, report_fronts, report_objectives  # noqa: E402
from dsmnas.experiments.cli import main  # noqa: E402
from dsmnas.experiments.plan import plan_compare  # noqa: E402

LATENCY = "val_acc:max,latency_s:min"
OBJ = Objectives(("val_acc", "latency_s"), ("max", "min"), (0.0, 0.0), (100.0, 1.0))


def _front(points) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(points, float).reshape(-1, 2), columns=list(OBJ.names))


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_attainment_surfaces_of_hand_made_fronts_count_an_empty_one():
    """Three runs, the third with no feasible architecture: 25 % is one run (the union of the
    two fronts), 50 % two (the points both reach), 75 % all three (nothing)."""
    fronts = [_front([[90, 0.5], [80, 0.3]]), _front([[85, 0.4], [70, 0.2]]), _front([])]
    surfaces = report_fronts.attainment_surfaces(fronts, OBJ)  # normalised: error, latency
    np.testing.assert_allclose(surfaces[25], [[0.1, 0.5], [0.15, 0.4], [0.2, 0.3], [0.3, 0.2]])
    np.testing.assert_allclose(surfaces[50], [[0.15, 0.5], [0.2, 0.4], [0.3, 0.3]])
    assert surfaces[75].shape == (0, 2)
    # without the empty run, 50 % of two runs is one of them: the union again
    two = report_fronts.attainment_surfaces(fronts[:2], OBJ)
    np.testing.assert_allclose(two[50], surfaces[25])


def test_staircase_and_heights_of_a_surface():
    surface = np.array([[0.1, 0.5], [0.2, 0.3]])
    x, y = report_fronts.staircase(surface, worst=3.0)
    assert x.tolist() == [0.1, 0.1, 0.2, 3.0] and y.tolist() == [3.0, 0.5, 0.3, 0.3]
    heights = report_fronts.surface_at(surface, np.array([0.0, 0.1, 0.15, 0.2, 3.0]), 3.0)
    assert heights.tolist() == [3.0, 0.5, 0.5, 0.3, 0.3]


def test_raw_values_invert_the_normalisation():
    obj = Objectives(("latency_s", "val_acc", "params_mb"), ("min", "max", "max"),
                     (0.0, 0.0, 1.0), (0.02, 100.0, 3.0))
    raw = np.array([[0.01, 91.5, 1.5], [0.002, 10.0, 2.9]])
    np.testing.assert_allclose(report_fronts.raw_values(obj, obj.normalise(raw)), raw)
    # a pair of columns: val_acc then latency_s
    pair = obj.normalise(raw)[:, [1, 0]]
    np.testing.assert_allclose(report_fronts.raw_values(obj, pair, (1, 0)), raw[:, [1, 0]])


def test_panels_put_the_reward_up_and_pair_the_others():
    assert report_fronts.panels(OBJ) == [(1, 0)]
    three = Objectives(("latency_s", "val_acc", "params_mb"), ("min", "max", "min"),
                       (0, 0, 0), (1, 100, 1))
    assert report_fronts.panels(three) == [(0, 1), (2, 1), (0, 2)]
    assert report_fronts.axis_label(three, 1) == (
        "validation accuracy, val_acc (%): higher is better")
    assert report_fronts.axis_label(three, 2) == "params_mb: lower is better"


def test_the_true_front_file_round_trips_sorted_by_the_first_objective(tmp_path):
    values = np.array([[80.0, 0.3], [90.0, 0.5], [70.0, 0.1]])
    path = report_fronts.write_true_front(values, OBJ, tmp_path)
    assert pd.read_csv(path).columns.tolist() == ["val_acc", "latency_s"]
    assert report_fronts.load_true_front(tmp_path, OBJ).tolist() == [
        [90.0, 0.5], [80.0, 0.3], [70.0, 0.1]]
    assert report_fronts.write_true_front(None, OBJ, tmp_path / "x") is None
    assert report_fronts.load_true_front(tmp_path / "x", OBJ) is None


def test_write_report_draws_the_fronts_of_the_finished_runs(tmp_path):
    runs = pd.DataFrame({"method": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
                         "status": ["ok", "ok", "ok", "failed"], "arch": ["x"] * 4,
                         "val_acc": [90.0, 85.0, 88.0, np.nan],
                         "hypervolume_val": [0.5, 0.4, 0.45, np.nan],
                         "queries": [10] * 4, "sim_time_s": [100.0] * 4,
                         "wall_time_s": [1.0] * 4, "error": ["", "", "", "boom"]})
    folder = tmp_path / report.FRONTS
    folder.mkdir()
    fronts = {("a", 0): [[90, 0.5], [80, 0.3]], ("a", 1): [[85, 0.4]], ("b", 0): [[88, 0.6]],
              ("b", 1): [[99, 0.1]]}  # a failed run's file is not read
    for (method, seed), points in fronts.items():
        _front(points).assign(arch="x").to_csv(folder / f"{method}-{seed}.csv", index=False)
    loaded = report_fronts.load_fronts(runs, folder)
    assert sorted(loaded) == [("a", 0), ("a", 1), ("b", 0)]
    paths = report_objectives.write_report(runs, {}, tmp_path, OBJ, reference="a",
                                           fronts=loaded,
                                           true_front=np.array([[92.0, 0.2], [95.0, 0.7]]))
    assert tmp_path / report_fronts.FRONTS_PNG in paths
    assert _is_png(tmp_path / report_fronts.FRONTS_PNG)


def test_compare_writes_the_true_front_and_the_fronts_plot(tmp_path, ray_session):
    out = tmp_path / "cmp"
    assert main(["compare", "--methods", "random", "--objectives", LATENCY, "--seeds", "2",
                 "--budget", "40000", "--out", str(out)]) == 0
    bench = make_benchmark(EnvConfig(objectives=LATENCY, seed=0))
    truth = true_front(bench.objectives, bench.objective_scale)
    written = pd.read_csv(out / report_fronts.TRUE_FRONT_CSV)
    assert len(written) == len(truth) == 25
    assert sorted(map(tuple, written.to_numpy().tolist())) == sorted(map(tuple, truth.tolist()))
    assert written["val_acc"].is_monotonic_decreasing  # sorted by the first objective
    assert _is_png(out / report_fronts.FRONTS_PNG)
    # the plan carries the true front within the limits
    plan = plan_compare("random", 1, env={"objectives": LATENCY,
                                          "limits": {"latency_s": 0.01}})
    assert max(v[1] for v in plan.true_front) <= 0.01 < truth[:, 1].max()
