import pandas as pd
import pytest

from dsmnas.experiments.ablate import ablation_markdown, ablation_table, centers_explored
from dsmnas.experiments.settings import ABLATIONS, reference, variants
from dsmnas.experiments.cli import main


def test_every_ablation_is_well_formed():
    assert set(ABLATIONS) == {"update", "reward", "graph", "K", "M"}
    assert [v.env["K"] for v in variants("K")] == [1, 2, 4, 8, 16]
    assert [v.env["M"] for v in variants("M")] == [1, 2, 3, 4, 6]
    # each space its own grids and references: mobilenet runs the paper's Fig. 9
    assert [v.env["K"] for v in variants("K", "mobilenet")] == [1, 5, 10, 15, 20]
    assert [v.env["M"] for v in variants("M", "mobilenet")] == [1, 3, 5, 10, 20]
    assert (reference("K"), reference("M")) == ("dsm-K4", "dsm-M4")
    assert (reference("K", "mobilenet"), reference("M", "mobilenet")) == ("dsm-K10", "dsm-M3")
    assert reference("graph") is None
    assert [v.label for v in variants("graph")] == ["dsm", "dsm-oneway", "dsm-nograph"]
    assert {v.method for v in variants("update")} == {"dsm", "random", "random-mined", "random-update"}
    with pytest.raises(ValueError, match="unknown ablation 'x'; allowed: update, reward"):
        variants("x")


def test_centers_explored_counts_distinct_replacements():
    h = pd.DataFrame({"arch": ["a", "b", "a", "c", "d"], "accepted": [True, False, True, True, False]})
    assert centers_explored(h, K=4) == 4 + 2  # 'a' twice counts once, 'c' once


def test_ablation_table_on_hand_made_runs():
    runs = pd.DataFrame({
        "method": ["dsm", "dsm", "dsm-absolute", "dsm-absolute"],
        "seed": [0, 1, 0, 1], "status": ["ok"] * 4,
        "val_acc": [84.0, 85.0, 83.0, 83.0], "test_acc_cifar10": [94.0, 94.2, 93.5, 93.7],
    })
    hist = lambda n: pd.DataFrame({"arch": [f"x{i}" for i in range(n)], "accepted": [True] * n})  # noqa: E731
    histories = {("dsm", 0): hist(10), ("dsm", 1): hist(6), ("dsm-absolute", 0): hist(2),
                 ("dsm-absolute", 1): hist(4)}
    table = ablation_table("reward", runs, histories, K=4)
    assert table["variant"].tolist() == ["dsm", "dsm-absolute"]
    assert table["test_acc_cifar10"].tolist() == pytest.approx([94.1, 93.6])
    assert table["val_acc_std"].tolist() == pytest.approx([0.7071068, 0.0])
    assert table["centers_explored"].tolist() == [4 + 8, 4 + 3]
    md = ablation_markdown("reward", table)
    assert "| dsm | 2 | 84.50 ± 0.71 | 94.10 ± 0.14 | 12.0 |" in md


def test_reward_ablation_end_to_end(nb201_data, tmp_path, ray_session):
    out = tmp_path / "abl"
    rc = main(["ablate", "reward", "--seeds", "1", "--budget", str(nb201_data.budget_s(1500)),
               *nb201_data.args, "--out", str(out)])
    assert rc == 0
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["method"]) == ["dsm", "dsm-absolute"] and (runs["status"] == "ok").all()
    # the per-variant env setting reached the trial: absolute reward = queried val accuracy
    absolute = pd.read_csv(out / "histories" / "dsm-absolute-0.csv")
    improvement = pd.read_csv(out / "histories" / "dsm-0.csv")
    assert len(absolute) > 5 and (absolute["reward"] == absolute["val_acc"]).all()
    assert not (improvement["reward"] == improvement["val_acc"]).all()
    for name in ("ablation.md", "ablation.csv", "ablation.png", "summary.md", "test_acc.png"):
        assert (out / name).exists(), name
    assert "centers explored" in (out / "ablation.md").read_text()
