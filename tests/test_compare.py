"""`dsmnas compare`: input checks before Ray, the incremental runs.csv, and two comparisons
end to end through Ray Tune on NAS-Bench-201 (the shared table, else the embedded data; one
with a run that always fails)."""

import contextlib
import io
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from dsmnas.envs import EnvConfig
from dsmnas.experiments import report
from dsmnas.experiments.cli import EXIT_FAILED_RUNS, main
from dsmnas.experiments.plan import (
    ComparePlan,
    apply_sets,
    parse_methods,
    plan_compare,
    plan_difference,
    plan_identity,
    population_groups,
)
from dsmnas.experiments.settings import MethodSpec
from dsmnas.trainables.methods import METHODS, method_names, run_method, run_method_population


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_help_lists_every_method_with_its_description(capsys):
    assert exit_code(["compare", "--help"]) == 0
    out = capsys.readouterr().out
    for name, method in METHODS.items():
        assert any(line.split()[:1] == [name] and method.description in line
                   for line in out.splitlines()), name


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "dsm,nope"], "unknown method 'nope'; allowed: " + ", ".join(method_names())),
        (["--methods", "dsm,dsm"], "method 'dsm' is listed twice"),
        (["--methods", "dsm", "--set", "dsmx.lr=1"], "'dsmx' is not a compared method"),
        (["--methods", "dsm", "--set", "dsm.lr"], "expected METHOD.KEY=VALUE"),
        (["--methods", "dsm", "--set", "env.seed=3"], "env.seed is set per run"),
        (["--methods", "dsm", "--set", "env.KK=3"], "unknown environment setting(s) ['KK']"),
        (["--methods", "dsm", "--seeds", "0"], "--seeds must be an integer >= 1, got 0"),
        (["--methods", "dsm", "--seeds", "1", "--first-seed", "-3"],
         "--first-seed must be an integer >= 0, got -3"),
        (["--methods", "dsm", "--table", "/no/such.csv"], "'/no/such.csv' does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_ray_starts(argv, message, capsys, monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr("dsmnas.trainables.ray_utils.ensure_ray", no_ray)
    assert exit_code(["compare", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_method_variants_and_set_values():
    specs, env = apply_sets(
        parse_methods("dsm, nograph=dsm"),
        ["nograph.use_graph=false", "nograph.lr=2e-2", "dsm.entropy=0", "env.K=8",
         "env.init_centers=[\"a\", \"b\"]", "dsm.name=text"],
    )
    assert [(s.label, s.method) for s in specs] == [("dsm", "dsm"), ("nograph", "dsm")]
    assert specs[0].settings == {"entropy": 0, "name": "text"}
    assert specs[1].settings == {"use_graph": False, "lr": 0.02}
    assert env == {"K": 8, "init_centers": ["a", "b"]}


def test_population_groups_are_contiguous_and_balanced():
    assert population_groups(range(100), 50) == [tuple(range(50)), tuple(range(50, 100))]
    assert [len(g) for g in population_groups(range(60), 50)] == [30, 30]
    assert [len(g) for g in population_groups(range(7), 3)] == [3, 2, 2]
    assert population_groups([5], 50) == [(5,)]
    assert population_groups(range(3), 1) == [(0,), (1,), (2,)]


def test_plan_pools_the_methods_that_support_population_mode():
    methods = "dsm,random,big=dsm,nograph=dsm"
    sets = ["big.batch_size=2", "nograph.use_graph=false"]
    plan = plan_compare(methods, 5, first_seed=2, sets=sets, population=3)
    # random has no population mode; batch size 2 is not the population's batch size 1
    assert plan.pooled == ("dsm", "nograph") and plan.population == 3
    assert plan.trials() == [("dsm", (2, 3, 4)), ("dsm", (5, 6)),
                             *[("random", (s,)) for s in range(2, 7)],
                             *[("big", (s,)) for s in range(2, 7)],
                             ("nograph", (2, 3, 4)), ("nograph", (5, 6))]
    # a seed's population is the plan's, whichever runs are left: a resume reruns it whole
    assert plan.trials([("dsm", 6), ("random", 3)]) == [("dsm", (5, 6)), ("random", (3,))]
    lone = plan_compare(methods, 5, sets=sets, population=1)
    assert lone.pooled == () and all(len(seeds) == 1 for _, seeds in lone.trials())
    assert plan_compare("dsm", 1).pooled == ()  # one seed: a lone search
    # the population is part of what a resume must match
    diff = plan_difference(plan_identity(lone), plan_identity(plan))
    assert diff and diff.startswith("population None there")
    with pytest.raises(ValueError, match="--population must be an integer >= 1, got 0"):
        plan_compare("dsm", 2, population=0)


def test_planning_imports_no_ray():
    """Bad input fails before Ray is even imported: planning methods of every kind (an RLlib
    one, a population one, one on a worker pool) and importing the runner leave Ray out."""
    code = (
        "import sys\nfrom dsmnas.experiments.plan import plan_compare\n"
        "import dsmnas.experiments.compare\n"
        "plan = plan_compare('dsm,random,ppo,dsm-async', 2)\n"
        "print(list(plan.pooled), sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(Path(__file__).resolve().parent.parent))
    assert out.stdout.strip().splitlines()[-1] == "['dsm'] []", out.stdout[-500:]


def test_a_population_trial_records_a_row_per_search_and_fails_as_a_whole(tmp_path):
    from dsmnas.experiments.recorder import RunsRecorder

    plan = ComparePlan(
        methods=(MethodSpec("dsm", "dsm"),), seeds=(0, 1, 2), env=EnvConfig(),
        datasets=(), source="test", budget_s=100.0, population=3, pooled=("dsm",),
    )
    lines = []
    recorder = RunsRecorder(plan, tmp_path, lines.append)
    trial = SimpleNamespace(config={"run": "dsm:0,1,2", "label": "dsm", "seed": 0,
                                    "seeds": [0, 1, 2]}, path=None, num_failures=1,
                            error_file=None, get_error=lambda: "ValueError: boom")
    for seed in (1, 0):
        recorder.on_trial_result(0, [trial], trial, {
            "method": "dsm", "seed": seed, "arch": f"a{seed}", "val_acc": 80.0 + seed,
            "queries": 2, "sim_time_s": 50.0, "wall_time_s": 0.1,
            "history_csv": "step,val_acc\n0,70.0\n"})
    recorder.on_trial_error(0, [trial], trial)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert runs[["seed", "status", "arch"]].fillna("").values.tolist() == [
        [0, "ok", "a0"], [1, "ok", "a1"], [2, "failed", ""]]
    assert "ValueError: boom (1 attempt)" in runs.loc[2, "error"]
    assert lines[0].startswith("[1/3] dsm seed 1: a1")
    assert "dsm seeds 0-2 (population): FAILED after 1 attempt(s)" in lines[-1]


def test_runs_csv_is_rewritten_as_each_run_finishes(tmp_path):
    from dsmnas.experiments.recorder import RunsRecorder

    plan = ComparePlan(
        methods=(MethodSpec("dsm", "dsm"),), seeds=(0, 1), env=EnvConfig(),
        datasets=("cifar10",), source="test", budget_s=100.0,
    )
    lines = []
    recorder = RunsRecorder(plan, tmp_path, lines.append)
    trial = SimpleNamespace(config={"run": "dsm:1", "label": "dsm", "seed": 1}, path=None)
    result = {"method": "dsm", "seed": 1, "arch": "x", "val_acc": 80.0, "test_acc_cifar10": 90.0,
              "queries": 2, "sim_time_s": 50.0, "wall_time_s": 0.1, "training_iteration": 1,
              "history_csv": "step,val_acc,sim_time_s\n0,70.0,20.0\n1,80.0,50.0\n"}
    recorder.on_trial_result(0, [trial], trial, result)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert list(runs.columns) == plan.columns and len(runs) == 1
    assert runs.loc[0, ["method", "seed", "status", "val_acc", "queries"]].tolist() == [
        "dsm", 1, "ok", 80.0, 2]
    assert pd.read_csv(tmp_path / "histories" / "dsm-1.csv")["val_acc"].tolist() == [70.0, 80.0]
    assert lines and lines[0].startswith("[1/2] dsm seed 1: x  val 80.00  test cifar10 90.00")


@pytest.fixture(scope="module")
def compared(nb201_data, tmp_path_factory, ray_session):
    """dsm and random x seeds 3, 4 through Tune (dsm's two seeds as one population, the
    default), what it printed, and each method's seed-4 search run again in this process
    (dsm's as the same population)."""
    out = tmp_path_factory.mktemp("compare") / "cmp"
    budget_s = nb201_data.budget_s(1500)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["compare", "--methods", "dsm,random", "--seeds", "2", "--first-seed", "3",
                   *nb201_data.args, "--budget", str(budget_s), "--out", str(out)])
    env = EnvConfig(table=nb201_data.table, budget_s=budget_s, seed=4)
    again = {"random": run_method("random", env),
             "dsm": run_method_population("dsm", env, {}, [3, 4])[1]}
    return SimpleNamespace(rc=rc, out=out, budget_s=budget_s, printed=printed.getvalue(),
                           again=again)


def test_compare_end_to_end_through_tune(compared, nb201_data):
    out = compared.out
    assert compared.rc == 0
    runs = pd.read_csv(out / "runs.csv")
    tests = nb201_data.test_columns
    assert list(runs.columns) == ["method", "seed", "status", "arch", "val_acc", *tests,
                                  "queries", "sim_time_s", "wall_time_s", "best_visited_arch",
                                  "best_visited_val_acc", *[f"best_visited_{t}" for t in tests],
                                  "error"]
    # the best visited architecture: at least the answer, the best query for random search
    assert (runs.best_visited_val_acc >= runs.val_acc).all()
    rnd = runs[runs.method == "random"]
    assert (rnd.best_visited_arch == rnd.arch).all()
    assert list(zip(runs.method, runs.seed)) == [("dsm", 3), ("dsm", 4), ("random", 3),
                                                 ("random", 4)]
    assert (runs.status == "ok").all() and runs.error.isna().all()
    for r in runs.itertuples():
        history = pd.read_csv(out / "histories" / f"{r.method}-{r.seed}.csv")
        assert r.queries == len(history) > 5
        assert r.sim_time_s == pytest.approx(history.cost_s.sum())
        assert r.sim_time_s <= compared.budget_s
        if r.method == "random":  # the best query is the answer
            assert r.val_acc == history.val_acc.max()
        else:  # the best center: at least as good as every accepted architecture
            assert r.val_acc >= history.loc[history.accepted.astype(bool), "val_acc"].max()
    # each trial ran its own method and seed(s): the same search in this process agrees
    for method, again in compared.again.items():
        row = runs[(runs.method == method) & (runs.seed == 4)].iloc[0]
        assert (row.arch, row.val_acc, row.queries) == (again.arch, again.val_acc, again.queries)
        history = pd.read_csv(out / "histories" / f"{method}-4.csv")
        assert history["arch"].tolist() == again.history["arch"].tolist()
    assert "population mode for dsm" in compared.printed
    assert "in 3 trial(s)" in compared.printed  # dsm 3-4 as one, random 3 and 4
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    assert summary.loc["random", "n_runs"] == 2 and summary.loc["random", "n_failed"] == 0
    dsm_val = runs.loc[runs.method == "dsm", "val_acc"]
    assert summary.loc["dsm", "val_acc_mean"] == pytest.approx(dsm_val.mean())
    md = (out / "summary.md").read_text()
    datasets = "".join(f"{d} | " for d in nb201_data.test_datasets)
    assert f"| method | runs | failed | val | {datasets}queries | wall s |" in md
    assert ("This data has no test accuracy." in md) == (not tests)
    for png in (report.ANYTIME_PNG, report.TEST_PNG):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert compared.printed.count(" seed ") >= 4 and "4 finished, 0 failed" in compared.printed


def test_compare_reports_the_tables_test_accuracy(compared, nb201_data, nb201_table):
    assert nb201_data.table == nb201_table
    runs = pd.read_csv(compared.out / "runs.csv")
    for method, again in compared.again.items():
        row = runs[(runs.method == method) & (runs.seed == 4)].iloc[0]
        for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
            assert row[f"test_acc_{dataset}"] == pytest.approx(again.test_acc[dataset])
    summary = pd.read_csv(compared.out / "summary.csv").set_index("method")
    dsm_c10 = runs.loc[runs.method == "dsm", "test_acc_cifar10"]
    assert summary.loc["dsm", "test_acc_cifar10_mean"] == pytest.approx(dsm_c10.mean())
    assert 0 <= summary.loc["random", "test_acc_cifar10_p"] <= 1
    md = (compared.out / "summary.md").read_text()
    assert "| method | runs | failed | val | cifar10 | cifar100 | ImageNet16-120 |" in md
    assert "## Welch t-test against dsm" in md


def test_a_failing_run_is_retried_then_reported(nb201_data, tmp_path, ray_session, capsys):
    out = tmp_path / "cmp"
    # a run that passes every check before Ray starts, then fails in its trial (a plug-in
    # space whose benchmark raises at its third query)
    rc = main(["compare", "--methods", "dsm,bad=dsm", "--seeds", "1",
               "--set", "bad.env.space=tests.fixture_spaces:FAILING", "--set",
               "bad.env.fail_after=3", "--retries", "1", *nb201_data.args,
               "--budget", str(nb201_data.budget_s(1500)), "--out", str(out)])
    assert rc == EXIT_FAILED_RUNS  # the reports are written, and the exit code says so
    runs = pd.read_csv(out / "runs.csv").set_index("method")
    assert runs.loc["dsm", "status"] == "ok"
    assert runs.loc["bad", "status"] == "failed" and pd.isna(runs.loc["bad", "val_acc"])
    error = runs.loc["bad", "error"]
    assert error.startswith("RuntimeError: injected failure at query 3")
    assert error.endswith("(2 attempts)")  # the first try and one retry
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    assert summary.loc["bad", ["n_runs", "n_ok", "n_failed"]].tolist() == [1, 0, 1]
    md = (out / "summary.md").read_text()
    assert f"- bad seed 0: {error}" in md and "## Failed runs (1)" in md
    assert not (out / "histories" / "bad-0.csv").exists()
    printed = capsys.readouterr().out
    assert "bad seed 0 failed (attempt 1), retrying: RuntimeError" in printed
    assert "1 finished, 1 failed" in printed


def test_resume_runs_only_the_missing_run_and_reports_over_all(nb201_data, tmp_path,
                                                                ray_session, capsys):
    out = tmp_path / "cmp"
    budget_s, other_budget_s = nb201_data.budget_s(1500), nb201_data.budget_s(2000)
    argv = ["compare", "--methods", "random,rnd=random", "--seeds", "2", *nb201_data.args,
            "--budget", str(budget_s), "--out", str(out)]
    assert main(argv) == 0
    full = pd.read_csv(out / "runs.csv")
    assert len(full) == 4 and (full.status == "ok").all()
    # an interrupted comparison: 3 ok rows, (rnd, 1) never finished
    kept = full[~((full.method == "rnd") & (full.seed == 1))]
    kept.to_csv(out / "runs.csv", index=False)
    capsys.readouterr()

    # never overwritten by accident; another plan is refused, naming the difference
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pass --resume" in err
    assert exit_code([*argv[:-4], "--budget", str(other_budget_s), "--out", str(out),
                      "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"env.budget_s {budget_s!r} there, {other_budget_s!r} now" in err
    assert exit_code(["compare", "--methods", "random", "--seeds", "2", *nb201_data.args,
                      "--budget", str(budget_s), "--out", str(out), "--resume"]) == 2
    assert "methods random,rnd there, random now" in capsys.readouterr().err

    assert main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "3 of 4 planned runs are already ok" in printed and "running the other 1" in printed
    experiments = sorted((out / "tune").iterdir())
    assert len(experiments) == 2  # the first comparison's and the resume's
    trials = [d.name for d in experiments[-1].iterdir() if d.is_dir()]
    assert len(trials) == 1 and trials[0].startswith("rnd-1_")  # exactly one trial ran
    runs = pd.read_csv(out / "runs.csv")
    assert list(zip(runs.method, runs.seed)) == [("random", 0), ("random", 1), ("rnd", 0),
                                                 ("rnd", 1)]
    assert (runs.status == "ok").all()
    # the kept rows are the earlier ones (wall times included); the rerun is the same search
    pd.testing.assert_frame_equal(runs.iloc[:3].reset_index(drop=True),
                                  kept.reset_index(drop=True), check_dtype=False)
    cols = ["arch", "val_acc", "queries", "sim_time_s"]
    assert runs.iloc[3][cols].tolist() == full.iloc[3][cols].tolist()
    assert pd.read_csv(out / "summary.csv").set_index("method").loc["rnd", "n_ok"] == 2
    # a finished folder resumes to nothing: Ray's trials are not started again
    assert main([*argv, "--resume"]) == 0
    assert "running the other 0" in capsys.readouterr().out
    assert len(list((out / "tune").iterdir())) == 2
