"""DyNAS-T's trajectories under the mobilenet space's hypervolume
(`benchmarks/dynast_trajectories.py`): the five files in ../shared (skipped without them), a
hypervolume checked by hand, the space's normalisation, and the plot against a hand-made
mobilenet comparison folder."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("moocore", reason="needs the extra mo (moocore)")

from dsmnas.envs.benchmarks.mobilenet import objective_scale  # noqa: E402
from dsmnas.envs.errors import ConfigError  # noqa: E402
from dsmnas.envs.objectives import Objectives, parse_objectives  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dynast_trajectories.py"
_spec = importlib.util.spec_from_file_location("dynast_trajectories", SCRIPT)
dynast = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dynast)
DATA = dynast.DATA  # ../shared/data/ofa-dynast, or under DSMNAS_SHARED as conftest's


@pytest.fixture(scope="module")
def trajectories():
    if not DATA.exists():
        pytest.skip(f"shared DyNAS-T trajectories not found at {DATA}")
    return dynast.load_trajectories(DATA)


def test_the_loader_reads_the_five_trajectories_in_evaluation_order(trajectories):
    assert {n: len(t) for n, t in trajectories.items()} == {
        "evoga_acc": 364, "evonsga2_acc_macs": 540, "evounsga3_acc_macs_params": 554,
        "linasga_acc": 361, "linasnsga2_acc_macs": 554}
    for t in trajectories.values():
        assert t.columns.tolist() == ["evaluation", "top1_acc", "macs_m"]
        assert t["evaluation"].tolist() == list(range(1, len(t) + 1))
    every = pd.concat(trajectories.values())
    # the folder's README: top-1 71.0-77.5 %, MACs 123-506 M
    assert 70.9 < every["top1_acc"].min() and every["top1_acc"].max() < 77.5
    assert 122 < every["macs_m"].min() and every["macs_m"].max() < 507
    first = trajectories["evoga_acc"].iloc[0]  # the file's first row: 255502624 MACs, 75.448
    assert (first["top1_acc"], first["macs_m"]) == (75.448, 255.502624)


def test_the_hypervolume_of_the_first_three_evaluations_by_hand(trajectories):
    """evoga_acc's first three: (75.448 %, 255.502624 M), (76.042, 297.261792), (75.696,
    261.675008); normalised (error, macs / 600), none dominates another; the area up to (1, 1)
    summed over the three strips of the front sorted by error."""
    hv = dynast.anytime_hypervolume(trajectories["evoga_acc"])
    assert hv[0] == pytest.approx(0.75448 * (1 - 255.502624 / 600), abs=1e-12)
    by_hand = ((1 - 0.23958) * (1 - 297.261792 / 600)
               + (1 - 0.24304) * (297.261792 - 261.675008) / 600
               + (1 - 0.24552) * (261.675008 - 255.502624) / 600)
    assert hv[2] == pytest.approx(by_hand, abs=1e-12)
    assert by_hand == pytest.approx(0.43633817, abs=1e-8)
    assert len(hv) == 364 and np.all(np.diff(hv) >= 0)


def test_the_table_holds_equal_evaluations_and_the_caveat(trajectories):
    table = dynast.table(trajectories)
    row = table.set_index("trajectory").loc["evonsga2_acc_macs"]
    hv = dynast.anytime_hypervolume(trajectories["evonsga2_acc_macs"])
    assert row["N"] == 540 and row["final_hv"] == hv[-1]
    assert (row["hv_100"], row["hv_250"], row["hv_500"]) == (hv[99], hv[249], hv[499])
    assert math.isnan(row["hv_1000"])  # shorter than 1,000 evaluations
    lines = dynast.markdown(table)
    assert dynast.CAVEAT in lines[0]
    assert lines[5].startswith(f"| evonsga2_acc_macs | 540 | {hv[-1]:.4f} |")
    assert lines[5].endswith("| – |")


def test_the_normalisation_is_the_mobilenet_spaces():
    stub = SimpleNamespace(acc_scale=100.0, metrics={"macs_m": None}, source="stub")
    built = Objectives.build(parse_objectives(dynast.OBJECTIVES_TEXT), stub,
                             objective_scale(stub), "mobilenet")
    assert dynast.mobilenet_objectives() == built
    assert built.low == (0.0, 0.0) and built.high == (100.0, 600.0)


def _comparison(folder: Path, space: str = "mobilenet") -> Path:
    """A comparison folder of one method, two seeds: plan.json, runs.csv, histories/."""
    (folder / "histories").mkdir(parents=True)
    env = {"space": space, "objectives": "val_acc:max,macs_m:min", "limits": {"macs_m": 600.0}}
    (folder / "plan.json").write_text(json.dumps({"env": env, "budget_queries": 3}))
    pd.DataFrame({"method": ["random"] * 2, "seed": [0, 1], "status": ["ok"] * 2,
                  "queries": [3, 3]}).to_csv(folder / "runs.csv", index=False)
    histories = {0: [(80.0, 300.0), (70.0, 700.0), (90.0, 300.0)],  # 700 M: over the limit
                 1: [(50.0, 600.0), (80.0, 300.0), (80.0, 150.0)]}
    for seed, rows in histories.items():
        pd.DataFrame(rows, columns=["val_acc", "macs_m"]).assign(sim_time_s=0.0).to_csv(
            folder / "histories" / f"random-{seed}.csv", index=False)
    return folder


def test_a_comparisons_hypervolume_by_queries_and_the_plot(tmp_path):
    folder = _comparison(tmp_path / "cmp")
    curves = dynast.comparison_curves(folder, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(curves["random"], [
        [0.8 * 0.5, 0.8 * 0.5, 0.9 * 0.5],  # the second query is infeasible
        [0.5 * 0.0, 0.8 * 0.5, 0.8 * 0.75]])
    trajectory = pd.DataFrame({"evaluation": [1, 2], "top1_acc": [75.0, 76.0],
                               "macs_m": [300.0, 240.0]})
    path = dynast.plot_with_comparison({"t": trajectory}, folder, tmp_path / "hv.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_several_folders_make_one_comparison_and_the_equal_evaluations_table(tmp_path):
    first = _comparison(tmp_path / "a")
    second = _comparison(tmp_path / "b")
    runs = pd.read_csv(second / "runs.csv").assign(method="evolution")
    runs.to_csv(second / "runs.csv", index=False)
    for seed in (0, 1):
        (second / "histories" / f"random-{seed}.csv").rename(
            second / "histories" / f"evolution-{seed}.csv")
    curves = dynast.comparison_curves([first, second], np.array([2.0, 3.0]))
    assert set(curves) == {"random", "evolution"}
    np.testing.assert_allclose(curves["evolution"], curves["random"])
    lines = dynast.equal_evaluations([first, second], at=(2, 3, 4))
    # after 2 queries: 0.4 and 0.4; after 3: 0.45 and 0.6; 4 is beyond the budget
    assert lines[2] == "| random | 2 | 0.4000 ± 0.0000 | 0.5250 ± 0.1061 | – |"
    assert lines[3].startswith("| evolution | 2 | 0.4000 ± 0.0000")


def test_another_space_is_refused(tmp_path):
    folder = _comparison(tmp_path / "cmp", space="nb201")
    with pytest.raises(ConfigError, match="--space mobilenet"):
        dynast.comparison_curves(folder, np.array([1.0]))
