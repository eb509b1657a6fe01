import pytest

from dsmnas.envs import EnvConfig
from dsmnas.trainables.search import LearnerSettings, run_search


def test_same_seed_same_search_and_other_seeds_differ(nb201_data, ray_session):
    cfg = EnvConfig(table=nb201_data.table, budget_s=nb201_data.budget_s(2500), seed=3)
    a = run_search(cfg, progress=None)
    b = run_search(cfg, progress=None)
    assert len(a.history) > 10
    assert a.history.equals(b.history) and (a.arch, a.val_acc) == (b.arch, b.val_acc)
    c = run_search(EnvConfig(table=nb201_data.table, budget_s=cfg.budget_s, seed=4), progress=None)
    assert not c.history.equals(a.history)


def test_no_graph_variant_and_absolute_reward_run(nb201_data, ray_session):
    budget_s = nb201_data.budget_s(2000)
    r = run_search(
        EnvConfig(table=nb201_data.table, budget_s=budget_s, seed=0, reward="absolute", K=2, M=2),
        LearnerSettings(use_graph=False),
        progress=None,
    )
    assert r.config["learner"]["use_graph"] is False
    # absolute reward: every row's reward is the queried validation accuracy
    assert len(r.history) > 5 and (r.history.reward == r.history.val_acc).all()
    assert r.sim_time_s == pytest.approx(r.history.cost_s.sum())
    assert r.sim_time_s <= budget_s


def test_one_search_in_process_starts_no_ray(tmp_path):
    """A lone search (with checkpoints, as `dsmnas search` runs it) needs no Ray instance:
    `trainables.ray_utils.build_algo` skips the one `ray.put` that would start one."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import ray\nfrom dsmnas.envs import EnvConfig\nfrom dsmnas.trainables.checkpoint import SearchRecorder\n"
        "from dsmnas.trainables.search import run_search\n"
        f"r = run_search(EnvConfig(budget_s=100000, seed=1), progress=None, "
        f"recorder=SearchRecorder({str(tmp_path / 'run')!r}, 5))\n"
        "print(r.queries, ray.is_initialized())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parent.parent))
    queries, initialized = out.stdout.split()[-2:]
    assert int(queries) > 20 and initialized == "False"
    assert (tmp_path / "run" / "checkpoint").is_dir()


def test_best_visited_is_the_best_query_within_the_limits():
    import numpy as np
    import pandas as pd

    from dsmnas.trainables.search import best_visited

    class Space:
        def parse(self, text):
            return np.array([int(c) for c in text])

        def format(self, tokens):
            return "".join(str(int(t)) for t in tokens)

    class Benchmark:  # "9" at the first position is over the limit
        def feasible(self, tokens):
            return tokens[0] != 9

        def report(self, tokens):
            return {"cifar10": float(tokens.sum())}

    history = pd.DataFrame({"arch": ["100", "911", "210", "300"],
                            "val_acc": [50.0, 99.0, 80.0, 70.0]})
    found = best_visited(Benchmark(), Space(), history, np.array([0, 0, 1]), 60.0,
                         {"cifar10": 1.0})
    assert found == {"arch": "210", "val_acc": 80.0, "test_acc": {"cifar10": 3.0}}
    # none better than the answer: the answer, with its own test accuracy (not looked up again)
    answer = best_visited(Benchmark(), Space(), history, np.array([0, 0, 2]), 90.0,
                          {"cifar10": 2.0})
    assert answer["arch"] == "002"
    assert answer == {"arch": "002", "val_acc": 90.0, "test_acc": {"cifar10": 2.0}}
