"""The supernet and fitted evaluators behind the environment, in-process and as Ray actors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dsmnas.envs import DSMNASEnv, EnvConfig
from dsmnas.envs.benchmarks import make_benchmark
from tests.test_supernet import TINY, _idx_folder
from dsmnas.trainables.supernet import train_supernet

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    data = _idx_folder(tmp_path_factory.mktemp("idx"))
    return train_supernet(data, str(tmp_path_factory.mktemp("supernet")), progress=None,
                          seed=0, **TINY)


def _run_env(env: DSMNASEnv, steps: int) -> list[float]:
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(steps):
        _, reward, _, _, info = env.step(rng.integers(env.action_space.nvec))
        rewards.append(reward)
        assert 0.0 <= info["val_acc"] <= 100.0
    return rewards


def test_supernet_evaluator_in_the_env(checkpoint):
    env = DSMNASEnv(space="mobilenet", evaluator="supernet", checkpoint=checkpoint,
                    budget_queries=6, K=2, seed=0)
    bench = env.benchmark
    assert bench.resolution == 16 and bench.width_mult == 1.2
    assert bench.val_metric == "supernet_val_top1"
    _run_env(env, 5)
    # the same subnet gets the same score; the report measures the test split
    c = env.graph.centers[0]
    assert bench.query(c, charge=False).val_acc == bench.query(c, charge=False).val_acc
    (name, test_acc), = bench.report(c).items()
    assert 0.0 <= test_acc <= 100.0
    with pytest.raises(ValueError, match="resolution 224 does not match the evaluator's 16"):
        make_benchmark(EnvConfig(space="mobilenet", evaluator="supernet", checkpoint=checkpoint,
                                 resolution=224))
    with pytest.raises(ValueError, match="needs a checkpoint"):
        make_benchmark(EnvConfig(space="mobilenet", evaluator="supernet"))


def test_the_macs_limit_binds_in_a_supernet_search(checkpoint):
    """On the (default) w1.2 supernet some proposals exceed 600M MACs at 224: they are
    queried (the paper's rule), never become centers, and the answer is within the limit."""
    from dsmnas.envs.spaces.mobilenet import MobileNetSpace, macs_m

    space, rng = MobileNetSpace(), np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(3000)]  # centers just under the limit
    macs = {space.format(t): macs_m(space.to_ofa(t), 224, 1.2) for t in samples}
    near = sorted((a for a in macs if macs[a] <= 600), key=macs.get)[-3:]
    env = DSMNASEnv(space="mobilenet", evaluator="supernet", checkpoint=checkpoint,
                    budget_queries=60, K=3, seed=0,
                    init_centers=near)
    (limited, limit), = env.benchmark.limits.items()
    assert limit == 600.0
    _run_env(env, 50)
    over = [r for r in env.history if dict(r.metrics)[limited] > limit]
    assert over and not any(r.accepted for r in over)
    assert all(env.benchmark.feasible(c) for c in env.graph.centers)


def test_fitted_evaluator_in_the_env(checkpoint, tmp_path):
    from dsmnas.trainables.fit_predictor import fit_predictor
    from dsmnas.envs.evaluators.supernet import SubnetEvaluator

    path = str(tmp_path / "fitted.pt")
    metrics = fit_predictor(SubnetEvaluator(checkpoint), 20, path, epochs=20, seed=0)
    assert metrics["n_train"] + metrics["n_held_out"] == 20
    env = DSMNASEnv(space="mobilenet", evaluator="fitted", predictor=path, budget_queries=50,
                    K=3, seed=0)
    assert env.benchmark.resolution == 16 and env.benchmark.val_metric == "fitted_predicted_top1"
    _run_env(env, 20)
    # the report: test accuracy on the supernet it was fitted to (never the reward)
    (test_acc,) = env.benchmark.report(env.graph.centers[0]).values()
    assert test_acc == SubnetEvaluator(checkpoint).test_accuracy(
        env.space.to_ofa(env.graph.centers[0]))
    with pytest.raises(ValueError, match="needs --predictor PATH"):
        make_benchmark(EnvConfig(space="mobilenet", evaluator="fitted"))


def test_env_through_evaluator_actors_matches_in_process(checkpoint, ray_session):
    from dsmnas.trainables.evaluator_service import start_evaluators

    local = DSMNASEnv(space="mobilenet", evaluator="supernet", checkpoint=checkpoint,
                      budget_queries=4, K=2, seed=0)
    with start_evaluators(checkpoint, n_actors=2, cpus_per_actor=0.5, name="env-test",
                          namespace="dsmnas") as service:
        remote = DSMNASEnv(space="mobilenet", evaluator="supernet", budget_queries=4, K=2,
                           seed=0, evaluator_service="env-test")
        assert remote.benchmark.source == "supernet:service:env-test"
        assert _run_env(remote, 3) == _run_env(local, 3)
        assert sum(s["evaluations"] for s in service.stats()) > 0


def test_cli_search_with_the_supernet(checkpoint, tmp_path):
    out = tmp_path / "search"
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "dsmnas.experiments.cli", "search", "--space",
         "mobilenet", "--evaluator", "supernet", "--checkpoint", checkpoint,
         "--budget-queries", "4", "-K", "2", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["queries"] == 4 and result["resolution"] == 16
    assert result["macs_m"] > 0 and result["max_macs_m"] == 600.0
    assert result["width_mult"] == 1.2  # recorded: what the MACs were counted on
    assert result["config"]["val_metric"] == "supernet_val_top1"
    (test_acc,) = result["test_acc"].values()  # the checkpoint's test images
    assert 0.0 <= test_acc <= 100.0


def test_sweep_trials_share_the_evaluator_actors(checkpoint, tmp_path):
    """`dsmnas sweep --evaluator-actors 1`: the driver starts one evaluator actor and every
    Tune trial of the sweep queries it by name."""
    import pandas as pd

    out = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "dsmnas.experiments.cli", "sweep", "--space",
         "mobilenet", "--K", "2", "--M", "1,2", "--seeds", "1", "--max-concurrent", "1",
         "--set", "env.evaluator=supernet", "--set", f"env.checkpoint={checkpoint}",
         "--set", "env.budget_queries=3", "--evaluator-actors", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 and (runs.status == "ok").all()
    plan = json.loads((out / "plan.json").read_text())
    assert plan["env"]["evaluator_service"] == "dsmnas-evaluator"
    assert plan["source"] == "supernet:service:dsmnas-evaluator"
