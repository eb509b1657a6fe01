"""The plug-in space of `examples/toy_space.py`, named by import string as a user would: the
env passes gymnasium's checker, bad settings stop before Ray, and a comparison of two methods
runs it through Ray Tune with its own setting and a limit on its own metric."""

from __future__ import annotations

import json
import sys

import gymnasium
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from dsmnas.envs import ConfigError, DSMNASEnv, EnvConfig, get_spec
from dsmnas.envs import registry
from dsmnas.envs.benchmarks import make_benchmark
from examples.toy_space import OPS, PARAMS_K, SPEC
from dsmnas.experiments.cli import main
from dsmnas.trainables.methods import run_method, run_method_population

SPACE = "examples.toy_space:SPEC"


def params_k(arch: str) -> float:
    return float(sum(PARAMS_K[OPS.index(op)] for op in arch.split("-")))


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_the_env_passes_gymnasiums_checker_and_is_deterministic():
    env = gymnasium.make("DSMNAS-v0", space=SPACE, budget_s=300.0, limits={"params_k": 60})
    env = env.unwrapped
    assert isinstance(env, DSMNASEnv)
    check_env(env)  # also: identical seeded resets and steps give identical obs and info
    obs, _ = env.reset(seed=3)
    assert obs["tokens"].shape == (4, 8) and obs["op_mask"].shape == (8, 5)  # the SPEC's K
    assert all(params_k(env.space.format(c)) <= 60 for c in obs["tokens"])  # drawn feasible


def test_the_toy_landscape_is_additive_without_interaction():
    bench = make_benchmark(EnvConfig(space=SPACE, interaction=0.0))
    rng = np.random.default_rng(0)
    a, b = bench.space.sample(rng), bench.space.sample(rng)
    logit = lambda t: np.log(bench._acc(t) / (100 - bench._acc(t)))  # noqa: E731
    # changing layer 2 from op 1 to op 4 moves the score by the same amount in any context
    deltas = [logit(np.r_[t[:2], 4, t[3:]]) - logit(np.r_[t[:2], 1, t[3:]]) for t in (a, b)]
    assert deltas[0] == pytest.approx(deltas[1])
    arch = "conv3-conv5-pool-pool-conv3-pool-conv5-sep3"
    assert bench.space.format(bench.space.parse(arch)) == arch and params_k(arch) == 75
    assert bench.cost_s(bench.space.parse(arch)) == 5 + 0.5 * 75
    assert bench.report(bench.space.parse(arch))["toy"] != bench.query(bench.space.parse(arch)).val_acc


def test_an_import_string_resolves_from_the_working_directory(tmp_path, monkeypatch):
    # `dsmnas` is a console script: its path lacks the folder it runs in, which Ray puts on
    # its workers' path; the driver looks there too
    (tmp_path / "cwd_space.py").write_text("from examples.toy_space import SPEC\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path.parent)
    registry._resolve.cache_clear()
    try:
        with pytest.raises(ConfigError, match="cannot import module 'cwd_space'"):
            get_spec("cwd_space:SPEC")
        monkeypatch.chdir(tmp_path)
        assert get_spec("cwd_space:SPEC") is SPEC and sys.path[-1] == str(tmp_path)
    finally:
        registry._resolve.cache_clear()
        sys.modules.pop("cwd_space", None)


@pytest.mark.parametrize("argv, message", [
    (["--interaction", "-1"], "interaction must be a number >= 0, got -1.0"),
    (["--set", "env.landscape=1.5"], "landscape must be a number >= 0, got 1.5"),
    (["--limit", "macs_m=600"], "cannot limit ['macs_m']: toy landscape 0 provides the "
                                "metrics params_k (thousand parameters)"),
    (["--dataset", "cifar10"], "the toy space has one dataset, 'toy', got 'cifar10'"),
])
def test_a_bad_example_setting_is_one_line_and_exit_2_before_ray(argv, message, capsys,
                                                                  monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr("dsmnas.trainables.ray_utils.ensure_ray", no_ray)
    assert exit_code(["compare", "--space", SPACE, "--methods", "dsm,random", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_compare_runs_the_example_through_tune(tmp_path, ray_session, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--space", SPACE, "--methods", "dsm,random", "--seeds", "2",
               "--budget", "800", "--limit", "params_k=60", "--interaction", "2",
               "--out", str(out)])
    assert rc == 0
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.columns) == ["method", "seed", "status", "arch", "val_acc", "test_acc_toy",
                                  "queries", "sim_time_s", "wall_time_s", "best_visited_arch",
                                  "best_visited_val_acc", "best_visited_test_acc_toy", "error"]
    assert list(zip(runs.method, runs.seed)) == [("dsm", 0), ("dsm", 1), ("random", 0),
                                                 ("random", 1)]
    assert (runs.status == "ok").all()
    assert json.loads((out / "plan.json").read_text())["env"]["interaction"] == 2.0
    for r in runs.itertuples():
        history = pd.read_csv(out / "histories" / f"{r.method}-{r.seed}.csv")
        assert "params_k" in history.columns and r.queries == len(history) > 5
        assert history.params_k.tolist() == [params_k(a) for a in history.arch]
        assert history.cost_s.tolist() == [5 + 0.5 * p for p in history.params_k]
        assert r.sim_time_s == pytest.approx(history.cost_s.sum()) and r.sim_time_s <= 800
        assert params_k(r.arch) <= 60  # answers within the limit
        feasible = history[history.params_k <= 60]
        if r.method == "random":  # the best feasible query is the answer
            assert r.val_acc == feasible.val_acc.max()
        else:  # centers are only replaced by feasible architectures
            accepted = history[history.accepted.astype(bool)]
            assert (accepted.params_k <= 60).all() and r.val_acc >= accepted.val_acc.max()
    # each trial ran with the example's setting: the same seed in this process, same history
    # (dsm's two seeds ran as one population, the default)
    cfg = EnvConfig(space=SPACE, budget_s=800.0, limits={"params_k": 60}, interaction=2.0, seed=1)
    again = {"dsm": run_method_population("dsm", cfg, None, [0, 1])[1],
             "random": run_method("random", cfg)}
    for method, result in again.items():
        pd.testing.assert_frame_equal(
            result.history.reset_index(drop=True),
            pd.read_csv(out / "histories" / f"{method}-1.csv"), check_dtype=False)
    assert "| method | runs | failed | val | toy |" in (out / "summary.md").read_text()
    assert "4 finished, 0 failed" in capsys.readouterr().out
