"""`dsmnas sweep`: grid and random plans, sweep files, input errors before Ray, the sweep
table and the choice of the best configuration on hand-made runs, and one small sweep end to
end through Ray Tune on the shared table."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dsmnas.experiments import report, sweep
from dsmnas.experiments.cli import main
from dsmnas.envs.errors import ConfigError
from dsmnas.experiments.sweep import Config, SweepSettings, configurations, resolve_settings


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


# ------------------------------------------------------------------------------ plans


def test_grid_is_every_combination_K_then_M_then_entropy():
    s = resolve_settings(flags={"K": "2,4", "M": [3, 2], "entropy": "5e-4,1e-3"})
    assert [(c.K, c.M, c.entropy) for c in configurations(s)] == [
        (2, 3, 5e-4), (2, 3, 1e-3), (2, 2, 5e-4), (2, 2, 1e-3),
        (4, 3, 5e-4), (4, 3, 1e-3), (4, 2, 5e-4), (4, 2, 1e-3),
    ]
    assert Config(4, 4, 7.5e-4).label == "K4-M4-ent0.00075"
    assert Config(2, 3, 1e-5).label == "K2-M3-ent1e-05"
    # nothing swept: the paper's setting alone
    assert configurations(SweepSettings()) == (Config(4, 4, 7.5e-4),)


def test_plan_gives_each_configuration_its_env_and_entropy():
    s = resolve_settings(flags={"K": "2,4", "M": "3", "seeds": 2, "first_seed": 5,
                                "set": ["dsm.lr=0.02", "env.reward=absolute"]})
    plan = sweep.plan_sweep(s)
    assert [(m.label, m.method, m.settings, m.env) for m in plan.compare.methods] == [
        ("K2-M3-ent0.00075", "dsm", {"lr": 0.02, "entropy": 7.5e-4}, {"K": 2, "M": 3}),
        ("K4-M3-ent0.00075", "dsm", {"lr": 0.02, "entropy": 7.5e-4}, {"K": 4, "M": 3}),
    ]
    assert plan.compare.seeds == (5, 6) and plan.compare.env.reward == "absolute"
    assert plan.resources == {"cpu": 1.0}
    assert plan.reference == "K2-M3-ent0.00075"  # the paper's K4-M4 is not swept


def test_lr_is_swept_only_when_given_and_then_named_in_the_labels():
    s = resolve_settings(flags={"K": "2", "M": "3", "entropy": "1e-3", "lr": "3e-3,0.01"})
    plan = sweep.plan_sweep(s)
    assert [(m.label, m.settings) for m in plan.compare.methods] == [
        ("K2-M3-ent0.001-lr0.003", {"entropy": 1e-3, "lr": 3e-3}),
        ("K2-M3-ent0.001-lr0.01", {"entropy": 1e-3, "lr": 0.01}),
    ]
    # not swept: no lr in the labels or the settings (the space's learning rate)
    assert sweep.plan_sweep(resolve_settings(flags={"K": "2"})).compare.methods[0].settings == {
        "entropy": 7.5e-4}
    with pytest.raises(ConfigError, match="lr is swept; use --lr"):
        sweep.plan_sweep(resolve_settings(flags={"lr": "0.01", "set": ["dsm.lr=0.02"]}))
    with pytest.raises(ConfigError, match="lr must be finite numbers > 0, got 0.0"):
        resolve_settings(flags={"lr": "0,0.01"})
    # the markdown and the best configuration name the learning rate
    runs = pd.DataFrame([{"method": c.label, "seed": 0, "arch": "a", "val_acc": v,
                          "queries": 10, "sim_time_s": 1.0, "wall_time_s": 1.0, "status": "ok"}
                         for c, v in zip(plan.configs, (84.0, 85.0))])
    summary = report.config_summary(report.sweep_table(runs, plan.configs))
    md = report.sweep_markdown(summary, "t")
    assert "| 1 | K2-M3-ent0.001-lr0.01 | 2 | 3 | 0.001 | 0.01 | 1 | 10 | 85.00 ± – |" in md
    assert report.describe_best(report.best_config(summary)).startswith(
        "K2-M3-ent0.001-lr0.01 (K=2, M=3, entropy=0.001, lr=0.01): val 85.00")


def test_parameters_not_swept_take_the_spaces_own_values():
    # the bug: `--space mobilenet --M 1,3` planned NB201's K = 4 and entropy 7.5e-4
    s = sweep.with_space_defaults(resolve_settings(flags={"space": "mobilenet", "M": "1,3"}))
    assert (s.K, s.M, s.entropy) == ((10,), (1, 3), (1e-3,))
    assert [c.label for c in configurations(s)] == ["K10-M1-ent0.001", "K10-M3-ent0.001"]
    assert sweep.paper_config("mobilenet") == Config(10, 3, 1e-3)
    assert sweep.paper_config("nb201") == Config(4, 4, 7.5e-4)
    # a plug-in space's own defaults too
    toy = sweep.with_space_defaults(resolve_settings(flags={"space": "tests.fixture_spaces:TOY"}))
    assert (toy.K, toy.M) == ((3,), (2,))


def test_mobilenet_sweep_plans_the_papers_values_and_reference(ofa_predictor):
    s = resolve_settings(flags={"space": "mobilenet", "M": "1,3", "seeds": 1,
                                "set": [f"env.predictor={ofa_predictor}"]})
    plan = sweep.plan_sweep(s)
    assert [(m.label, m.settings, m.env) for m in plan.compare.methods] == [
        ("K10-M1-ent0.001", {"entropy": 1e-3}, {"K": 10, "M": 1}),
        ("K10-M3-ent0.001", {"entropy": 1e-3}, {"K": 10, "M": 3}),
    ]
    assert plan.reference == "K10-M3-ent0.001"  # the paper's mobilenet setting
    assert plan.compare.env.budget_queries == 10_000


def test_random_draw_is_seeded_distinct_and_in_grid_order():
    base = {"K": "1,2,4,8", "M": "1,2,3,4", "entropy": "0,5e-4,1e-3", "num_samples": 10}
    grid = configurations(resolve_settings(flags={k: v for k, v in base.items()
                                                  if k != "num_samples"}))
    draw = lambda seed: configurations(  # noqa: E731
        resolve_settings(flags={**base, "search_alg": "random", "draw_seed": seed}))
    first = draw(0)
    assert first == draw(0)  # reproducible
    assert len(first) == len(set(first)) == 10 and set(first) <= set(grid)
    assert [grid.index(c) for c in first] == sorted(grid.index(c) for c in first)
    assert draw(1) != first
    # the draw is uniform over the grid: every configuration about equally often
    random = resolve_settings(flags=base)  # --num-samples alone: random
    counts = pd.Series([c for seed in range(500) for c in configurations(
        dataclasses.replace(random, draw_seed=seed))]).value_counts()
    assert len(counts) == len(grid) and stats.chisquare(counts).pvalue > 1e-3
    # all of the grid: every configuration once
    assert set(configurations(resolve_settings(flags={**base, "num_samples": 48}))) == set(grid)
    with pytest.raises(ValueError, match="--num-samples 49: the grid has only 48 configuration"):
        configurations(resolve_settings(flags={**base, "num_samples": 49}))


@pytest.mark.parametrize("flags, message", [
    ({"K": "2,x"}, "K: 'x' is not an integer"),
    ({"K": [2, 2.5]}, "K: 2.5 is not an integer"),
    ({"K": "0,2"}, "K must be integers >= 1, got 0"),
    ({"M": [True]}, "M: True is not an integer"),
    ({"K": "2,4,2"}, "K lists 2 twice"),
    ({"K": ""}, "K lists no value"),
    ({"entropy": "-1e-3"}, "entropy must be finite numbers >= 0, got -0.001"),
    ({"entropy": "nan"}, "entropy must be finite numbers >= 0, got nan"),
    ({"search_alg": "random"}, "--search-alg random needs --num-samples N"),
    ({"search_alg": "optuna"}, "--search-alg optuna needs --num-samples N"),
    ({"search_alg": "grid", "num_samples": 3}, "--num-samples is for --search-alg random"),
    ({"search_alg": "bayes"},
     "unknown search algorithm 'bayes'; allowed: grid, random, optuna, hyperopt"),
    ({"num_samples": 0}, "--num-samples must be >= 1, got 0"),
    ({"entropy": "1e-2..1e-4", "num_samples": 2}, "entropy range 1e-2..1e-4: a log-uniform "
                                                  "range needs 0 < LOW < HIGH"),
    ({"lr": "0..1e-2", "num_samples": 2}, "lr range 0..1e-2: a log-uniform range needs"),
    ({"entropy": "1e-4..", "num_samples": 2}, "entropy '1e-4..' is not a range: write LOW..HIGH"),
    ({"entropy": "1e-4..1e-3..1e-2", "num_samples": 2}, "is not a range"),
    ({"entropy": "1e-4..1e-2"}, "entropy 0.0001..0.01: a grid takes lists, not ranges"),
    ({"K": "2..8"}, "K '2..8': K takes a list of values (choices), not a range"),
    ({"cpus_per_trial": 0}, "cpus_per_trial must be > 0, got 0.0"),
    ({"scheduler": "hyperband"}, "unknown scheduler 'hyperband'; allowed: fifo, asha"),
    ({"asha_grace": 0}, "asha_grace must be in (0, 1], got 0.0"),
    ({"asha_reduction": 1}, "asha_reduction must be an integer >= 2, got 1"),
    ({"budget": "lots"}, "budget: 'lots' is not a number"),
])
def test_bad_settings_name_the_value(flags, message):
    with pytest.raises(ValueError) as e:
        resolve_settings(flags=flags)
    assert message in str(e.value)


# ------------------------------------------------------------------------------ files


def test_example_file_loads():
    s = resolve_settings(sweep.load_sweep_file("nb201-small"))
    assert (s.K, s.M, s.entropy) == ((2, 4, 8), (2, 3, 4), (5e-4, 7.5e-4, 1e-3))
    assert (s.search_alg, s.num_samples, s.draw_seed, s.seeds) == ("random", 6, 0, 3)
    assert len(configurations(s)) == 6
    assert sweep.load_sweep_file(sweep.SWEEP_DIR / "nb201-small.yaml")["num_samples"] == 6


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("K: [2, 4]\nentropy: [5e-4, 1.0e-3]\nsearch_alg: random\nnum_samples: 3\n"
                    "seeds: 4\n"
                    "budget: 2e4\nset: [dsm.lr=0.02]\n")
    values = sweep.load_sweep_file(path)
    s = resolve_settings(values, {"seeds": 2, "K": "8", "set": ["env.reward=absolute"]})
    # YAML reads "5e-4" and "2e4" as text; they are numbers here as on the command line
    assert (s.K, s.entropy, s.seeds, s.num_samples, s.budget) == ((8,), (5e-4, 1e-3), 2, 3, 2e4)
    assert s.set == ("dsm.lr=0.02", "env.reward=absolute")
    s = resolve_settings(values, {"search_alg": "grid"})  # a grid drops the file's draw
    assert (s.search_alg, s.num_samples, len(configurations(s))) == ("grid", None, 4)
    # a 0.4.0 file's keys `mode` and `samples` are read as search_alg and num_samples
    path.write_text("K: [2, 4]\nentropy: [5e-4, 1.0e-3]\nmode: random\nsamples: 3\n")
    s = resolve_settings(sweep.load_sweep_file(path))
    assert (s.search_alg, s.num_samples, len(configurations(s))) == ("random", 3, 3)


@pytest.mark.parametrize("text, error, message", [
    ("K: [2]\nseed: 3\nbatch: 1\n", ValueError,
     "unknown key(s) ['batch', 'seed'] in sweep config"),
    ("K: [2\n", ValueError, "is not valid YAML (line 2)"),
    ("- 2\n- 4\n", ValueError, "must be a mapping of keys to values"),
])
def test_bad_files(tmp_path, text, error, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(error) as e:
        sweep.load_sweep_file(path)
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="sweep config 'nope' does not exist"):
        sweep.load_sweep_file("nope")


def test_bad_input_is_one_line_and_exit_2_before_ray_starts(tmp_path, capsys, monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr("dsmnas.trainables.ray_utils.ensure_ray", no_ray)
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("K: [2, 4]\nentropies: [0]\n")
    cases = [
        (["--K", "2,x"], "K: 'x' is not an integer"),
        (["--M", "2,9"], "M must be an integer in 1..6"),
        (["--num-samples", "0"], "--num-samples must be >= 1, got 0"),
        (["--K", "2,4", "--num-samples", "5"],
         "--num-samples 5: the grid has only 2 configuration(s)"),
        (["--search-alg", "grid", "--num-samples", "2"], "--num-samples is for --search-alg"),
        (["--search-alg", "foo"], "unknown search algorithm 'foo'; allowed: grid, random, "
                                  "optuna, hyperopt"),
        (["--entropy", "1e-3..1e-4", "--num-samples", "2"], "needs 0 < LOW < HIGH"),
        (["--lr", "x..y", "--search-alg", "optuna", "--num-samples", "2"], "is not a range"),
        (["--search-alg", "optuna", "--num-samples", "2", "--seeds", "3", "--population", "2"],
         "--search-alg optuna compares configurations, each one trial of all its seeds"),
        (["--scheduler", "hyperband"], "unknown scheduler 'hyperband'; allowed: fifo, asha"),
        (["--config", str(bad_file)], "unknown key(s) ['entropies']"),
        (["--set", "env.K=8"], "K is swept; use --K"),
        (["--set", "dsm.entropy=0"], "entropy is swept; use --entropy"),
        (["--set", "random.lr=1"], "a sweep takes env.KEY=VALUE or dsm.KEY=VALUE"),
        (["--set", "dsm.nope=1"], "unknown dsm setting(s) ['nope']"),
        (["--cpus-per-trial", "999"], "--cpus-per-trial 999: the local Ray has"),
        (["--seeds", "0"], "--seeds must be an integer >= 1, got 0"),
        (["--table", "/no/such.csv"], "'/no/such.csv' does not exist"),
    ]
    for argv, message in cases:
        assert exit_code(["sweep", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, (argv, err)


# ------------------------------------------------------------ tables on hand-made runs


def hand_made_runs():
    """Two K x two M x one entropy x two seeds on cifar10 test columns. K2-M2 has the best
    validation accuracy, K4-M2 the best test accuracy; K4-M3 has one failed run."""
    configs = [Config(k, m, 5e-4) for k in (2, 4) for m in (2, 3)]
    val = {(2, 2): [85.0, 85.2], (2, 3): [84.0, 84.4], (4, 2): [84.9, 85.0], (4, 3): [83.0, None]}
    test = {(2, 2): [93.0, 93.2], (2, 3): [93.5, 93.7], (4, 2): [94.0, 94.4], (4, 3): [92.0, None]}
    rows = []
    for c in configs:
        for seed in (0, 1):
            v, t = val[(c.K, c.M)][seed], test[(c.K, c.M)][seed]
            rows.append({"method": c.label, "seed": seed,
                         "status": "ok" if v is not None else "failed",
                         "arch": "x" if v is not None else "", "val_acc": v,
                         "test_acc_cifar10": t, "queries": 10, "sim_time_s": 1500.0,
                         "wall_time_s": 1.0, "error": "" if v is not None else "Boom"})
    return pd.DataFrame(rows).astype({"val_acc": float, "test_acc_cifar10": float}), configs


def test_sweep_table_and_best_by_validation_not_test():
    runs, configs = hand_made_runs()
    table = report.sweep_table(runs, configs)
    assert list(table.columns) == ["K", "M", "entropy", "lr", "seed", "arch", "val_acc",
                                   "test_acc_cifar10", "queries", "sim_time_s", "wall_time_s",
                                   "status", "label"]
    assert table[["K", "M", "seed"]].values.tolist() == [
        [2, 2, 0], [2, 2, 1], [2, 3, 0], [2, 3, 1], [4, 2, 0], [4, 2, 1], [4, 3, 0], [4, 3, 1]]
    summary = report.config_summary(table)
    assert summary["n"].tolist() == [2, 2, 2, 1]
    assert summary["val_acc_mean"].tolist() == pytest.approx([85.1, 84.2, 84.95, 83.0])
    assert math.isnan(summary["val_acc_std"].iloc[3])
    best = report.best_config(summary)
    assert best["label"] == "K2-M2-ent0.0005"  # highest val; K4-M2 has the highest test
    assert best["test_acc_cifar10_mean"] == pytest.approx(93.1)
    assert summary.loc[summary["test_acc_cifar10_mean"].idxmax(), "label"] == "K4-M2-ent0.0005"
    text = report.describe_best(best)
    assert text == ("K2-M2-ent0.0005 (K=2, M=2, entropy=0.0005): val 85.10 ± 0.14 over 2 "
                    "seed(s); test cifar10 93.10 ± 0.14")
    md = report.sweep_markdown(summary, "t")
    assert "| 1 | K2-M2-ent0.0005 | 2 | 2 | 0.0005 | 2 | 20 | 85.10 ± 0.14 | 93.10 ± 0.14 |" in md
    assert "| 4 | K4-M3-ent0.0005 | 4 | 3 | 0.0005 | 1 | 20 | 83.00 ± – | 92.00 ± – |" in md
    assert "Compute: 80 queries in all, over 4 configurations (7 runs finished)." in md


def test_plot_data_averages_over_seeds_and_the_other_parameters():
    runs, configs = hand_made_runs()
    table = report.sweep_table(runs, configs)
    metric = report.plot_metric(table, "cifar10")
    assert metric == "test_acc_cifar10"
    assert report.plot_metric(table.drop(columns="test_acc_cifar10"), "cifar10") == "val_acc"
    by_k = report.by_parameter(table, "K", metric)
    assert by_k["value"].tolist() == [2, 4] and by_k["n"].tolist() == [4, 3]
    assert by_k["mean"].tolist() == pytest.approx([93.35, (94.0 + 94.4 + 92.0) / 3])
    assert by_k["std"].iloc[0] == pytest.approx(np.std([93.0, 93.2, 93.5, 93.7], ddof=1))
    Ks, Ms, mean, n = report.heatmap_grid(table, metric)
    assert (Ks, Ms) == ([2, 4], [2, 3]) and n.tolist() == [[2, 2], [2, 1]]
    np.testing.assert_allclose(mean, [[93.1, 93.6], [94.2, 92.0]])
    # random mode leaves holes: NaN, not zero
    Ks, Ms, mean, n = report.heatmap_grid(table[table["label"] != "K4-M3-ent0.0005"], metric)
    assert np.isnan(mean[1, 1]) and n[1, 1] == 0


def test_write_sweep_without_ray(tmp_path):
    runs, configs = hand_made_runs()
    paths, best = report.write_sweep(runs, configs, tmp_path, "cifar10")
    assert [p.name for p in paths] == ["sweep.csv", "sweep.md", report.PARAMS_PNG,
                                       report.HEATMAP_PNG]
    assert all(p.stat().st_size > 0 for p in paths) and best["label"] == "K2-M2-ent0.0005"
    assert len(pd.read_csv(tmp_path / "sweep.csv")) == len(runs)


def test_trials_get_the_resources_asked_for():
    from dsmnas.trainables.tune_trainable import search_trial, with_resources

    assert with_resources({"cpu": 2, "gpu": 0.5})._resources.required_resources == {
        "CPU": 2.0, "GPU": 0.5}
    assert search_trial._resources.required_resources == {"CPU": 1.0}  # not changed by it


# ------------------------------------------------------------------------- end to end


def test_sweep_end_to_end(nb201_data, tmp_path, ray_session, monkeypatch, capsys):
    import dsmnas.trainables.tune_trainable as tt
    asked = []
    original = tt.with_resources
    monkeypatch.setattr(tt, "with_resources", lambda r=None, *a: asked.append(r) or original(r, *a))
    out = tmp_path / "sweep"
    budget_s = nb201_data.budget_s(1500)
    rc = main(["sweep", "--K", "2,4", "--M", "3", "--seeds", "1", "--budget", str(budget_s),
               *nb201_data.args, "--cpus-per-trial", "2", "--out", str(out)])
    assert rc == 0
    assert asked == [{"cpu": 2.0}]
    table = pd.read_csv(out / "sweep.csv")
    assert table[["K", "M", "entropy", "seed", "status"]].values.tolist() == [
        [2, 3, 7.5e-4, 0, "ok"], [4, 3, 7.5e-4, 0, "ok"]]
    # one test_acc_<dataset> column per dataset with test accuracy (none embedded)
    assert [c for c in table.columns if c.startswith("test_acc_")] == nb201_data.test_columns
    for col in ("arch", "val_acc", *nb201_data.test_columns, "queries", "sim_time_s",
                "wall_time_s"):
        assert table[col].notna().all(), col
    assert (table["queries"] > 5).all() and (table["sim_time_s"] <= budget_s).all()
    # each configuration's K reached its trial: the chosen subspaces are 0..K-1
    for k in (2, 4):
        history = pd.read_csv(out / "histories" / f"K{k}-M3-ent0.00075-0.csv")
        assert history["subspace"].between(0, k - 1).all()
    for name in ("runs.csv", "summary.md", "summary.csv", "anytime_val.png", "test_acc.png",
                 "sweep.md", report.PARAMS_PNG, report.HEATMAP_PNG):
        assert (out / name).exists(), name
    best = table.loc[table["val_acc"].idxmax()]
    printed = capsys.readouterr().out
    assert "best configuration (highest mean validation accuracy" in printed
    assert f"{best['label']} (K={best['K']}, M=3, entropy=0.00075)" in printed


def test_an_existing_runs_csv_needs_resume_and_the_same_plan(nb201_data, tmp_path, capsys,
                                                             monkeypatch):
    import json

    from dsmnas.experiments.plan import PLAN_FILE, plan_identity

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start when the folder cannot be used")

    monkeypatch.setattr("dsmnas.trainables.ray_utils.ensure_ray", no_ray)
    argv = ["sweep", "--K", "2,4", "--M", "3", "--seeds", "1", "--budget", "1500",
            *nb201_data.args, "--out", str(tmp_path)]
    earlier = sweep.plan_sweep(resolve_settings(None, {"K": "2", "M": "3", "budget": 1500.0,
                                                       "table": nb201_data.table, "seeds": 1}))
    (tmp_path / PLAN_FILE).write_text(json.dumps(plan_identity(earlier.compare)))
    (tmp_path / "runs.csv").write_text(",".join(earlier.compare.columns) + "\n")
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pass --resume" in err, err
    assert exit_code([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "cannot resume" in err and "methods K2-M3-" in err and "K4-M3-" in err, err


def test_asha_needs_each_configuration_in_one_trial():
    with pytest.raises(ValueError, match="--population must be >= --seeds"):
        sweep.plan_sweep(resolve_settings(flags={"K": "2,4", "seeds": 3, "population": 2,
                                                 "scheduler": "asha"}))


def test_asha_stops_configurations_behind_and_keeps_them_unranked(nb201_data, tmp_path,
                                                                   ray_session):
    """One trial at a time, so ASHA's decisions follow the grid order: the first
    configuration sets each milestone's bar, and a later one below the bar (the top third of
    those recorded there goes on) stops there with the budget it spent."""
    out = tmp_path / "asha"
    budget_s = nb201_data.budget_s(6000)
    rc = main(["sweep", "--K", "4,1", "--M", "4,1", "--seeds", "2", "--budget", str(budget_s),
               *nb201_data.args, "--scheduler", "asha", "--max-concurrent", "1",
               "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out / "sweep.csv")
    assert set(table["status"]) <= {"ok", "stopped"} and len(table) == 8
    stopped = table[table["status"] == "stopped"]
    assert len(stopped) >= 2, table[["label", "status", "sim_time_s"]]
    assert stopped["val_acc"].isna().all() and (stopped["sim_time_s"] < budget_s).all()
    # a configuration's seeds are one trial: stopped together
    assert all(stopped.groupby("label").size() == 2)
    ok = table[table["status"] == "ok"]
    assert (ok["sim_time_s"] <= budget_s).all() and ok["val_acc"].notna().all()
    runs = pd.read_csv(out / "runs.csv")
    assert "stopped by the scheduler at" in runs.loc[runs["status"] == "stopped", "error"].iloc[0]
    ranked = (out / "sweep.md").read_text()
    assert all(label in ranked for label in set(ok["label"]))


# ------------------------------------------------------------------ search algorithms


def test_random_draw_over_a_range_is_log_uniform_rounded_and_seeded():
    flags = {"K": "2,4", "M": "2,3", "entropy": "1e-4..1e-2", "lr": "3e-3,1e-2",
             "num_samples": 400}
    s = resolve_settings(flags=flags)
    assert s.search_alg == "random" and s.entropy == sweep.LogUniform(1e-4, 1e-2)
    drawn = configurations(s)
    assert drawn == configurations(s) and len(set(drawn)) == 400
    assert configurations(dataclasses.replace(s, draw_seed=1)) != drawn
    entropy = np.array([c.entropy for c in drawn])
    assert ((entropy >= 1e-4) & (entropy <= 1e-2)).all()
    assert all(float(f"{e:.4g}") == e for e in entropy)  # rounded to 4 digits
    # log-uniform: each decade about half of the draws
    assert 0.4 < np.mean(entropy < 1e-3) < 0.6
    assert {c.K for c in drawn} == {2, 4} and {c.lr for c in drawn} == {3e-3, 1e-2}
    assert drawn[0].label == f"K{drawn[0].K}-M{drawn[0].M}-ent{drawn[0].entropy!r}-lr{drawn[0].lr!r}"


def test_a_search_algorithm_not_installed_names_its_extra(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "hyperopt" else find_spec(name, *a))
    with pytest.raises(ConfigError) as e:
        resolve_settings(flags={"search_alg": "hyperopt", "num_samples": 3})
    assert str(e.value) == ("--search-alg hyperopt needs the package 'hyperopt', which is not "
                            "installed: pip install 'dsmnas[hyperopt]'")


def test_distinct_searcher_answers_repeats_from_the_results_so_far():
    pytest.importorskip("optuna")
    from ray.tune.search import Searcher

    from dsmnas.experiments.tune_search import Distinct

    class Scripted(Searcher):
        """Suggests K from a script; records what it is told."""

        def __init__(self, script):
            super().__init__(metric="best_val_acc", mode="max")
            self.script, self.told = list(script), []

        def suggest(self, trial_id):
            return {"K": self.script.pop(0)} if self.script else None

        def on_trial_complete(self, trial_id, result=None, error=False):
            self.told.append((trial_id, None if result is None else result["best_val_acc"],
                              error))

    inner = Scripted([1, 1, 2, 2, 1, 3])
    searcher = Distinct(inner, key=lambda c: f"K{c['K']}", limit=3, printer=lambda _: None)
    assert searcher.suggest("a") == {"K": 1}
    # K1 is running: the repeat is answered as failed and another one drawn
    assert searcher.suggest("b") == {"K": 2} and inner.told == [("b-0", None, True)]
    searcher.on_trial_complete("a", {"best_val_acc": 80.0, "history_csv": "long text"})
    assert searcher.results["K1"] == {"best_val_acc": 80.0}  # its objective only
    # K2 running, then K1 done: answered with its result (the searcher learns it again)
    assert searcher.suggest("c") == {"K": 3}
    assert inner.told[1:] == [("a-0", 80.0, False), ("c-0", None, True), ("c-1", 80.0, False)]
    assert searcher.suggest("d") == Searcher.FINISHED  # all 3 configurations handed out
    state = searcher.get_state()
    other = Distinct(Scripted([]), key=lambda c: f"K{c['K']}", limit=3)
    other.set_state(state)
    assert other.results == searcher.results and other.inner == searcher.inner


@pytest.mark.parametrize("search_alg", ["optuna", "hyperopt"])
def test_a_search_algorithm_draws_distinct_configurations_as_one_trial_each(
        search_alg, nb201_data, tmp_path, ray_session):
    """Tune's searcher draws --num-samples configurations (an entropy range, K and M
    choices), each one trial of all the seeds; with ASHA some may stop. Every run is
    recorded under its configuration's label, and the sweep's tables list exactly the
    configurations drawn."""
    pytest.importorskip(search_alg)
    out = tmp_path / search_alg
    budget_s = nb201_data.budget_s(3000)
    rc = main(["sweep", "--search-alg", search_alg, "--num-samples", "4", "--K", "2,4",
               "--M", "2,3", "--entropy", "1e-4..1e-2", "--seeds", "2",
               "--budget", str(budget_s), *nb201_data.args, "--scheduler", "asha",
               "--max-concurrent", "1", "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 8 and table["label"].nunique() == 4
    assert set(table["status"]) <= {"ok", "stopped"} and (table["status"] == "ok").any()
    assert table.groupby("label")["seed"].apply(sorted).tolist() == [[0, 1]] * 4
    assert table["entropy"].between(1e-4, 1e-2).all() and set(table["K"]) <= {2, 4}
    for r in table.to_dict("records"):
        assert r["label"] == Config(r["K"], r["M"], r["entropy"]).label
    for label in table.loc[table["status"] == "ok", "label"].unique():
        history = pd.read_csv(out / "histories" / f"{label}-0.csv")
        assert history["subspace"].between(0, int(label[1]) - 1).all()
    md = (out / "sweep.md").read_text()
    assert f"{search_alg}, 4 trials, seed 0" in md and "Compute:" in md
    # each trial left Tune's progress file with its live reports
    progress = {p.parent.name.split("-seeds")[0]: pd.read_csv(p)
                for p in (out / "tune").glob("*/*/progress.csv")}
    assert sorted(progress) == sorted(table["label"].unique())
    for label, rows in progress.items():
        whole = (table.loc[table["label"] == label, "status"] == "ok").all()
        assert len(rows) >= (3 if whole else 1), (label, len(rows))  # a short budget


def test_a_sweep_file_takes_search_algorithms_and_ranges(tmp_path):
    path = tmp_path / "tpe.yaml"
    path.write_text("K: [2, 4]\nentropy: 1e-4..1e-2\nlr: [3e-3, 1e-2]\nsearch_alg: optuna\n"
                    "num_samples: 5\nseeds: 3\npopulation: 3\nscheduler: asha\n")
    s = resolve_settings(sweep.load_sweep_file(path))
    assert (s.search_alg, s.num_samples, s.entropy, s.lr) == (
        "optuna", 5, sweep.LogUniform(1e-4, 1e-2), (3e-3, 1e-2))
    plan = sweep.plan_sweep(s)
    assert plan.searcher and plan.configs == ()
    # every K x M pair is checked before Ray starts (the first entropy and lr stand in)
    assert [m.label for m in plan.compare.methods] == ["K2-M4-ent0.0001-lr0.003",
                                                        "K4-M4-ent0.0001-lr0.003"]
    path.write_text("entropy: 1e-2..1e-4\nsearch_alg: optuna\nnum_samples: 5\n")
    with pytest.raises(ConfigError, match="needs 0 < LOW < HIGH"):
        resolve_settings(sweep.load_sweep_file(path))
