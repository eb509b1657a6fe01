import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dsmnas.envs as envs
from dsmnas.envs import DSMNASEnv
from dsmnas.envs.graph import SubspaceGraph, weak_to_better
from dsmnas.envs.spaces.nb201 import NB201Space

SPACE = NB201Space()


def make(nb201_data, **kw):
    return DSMNASEnv(table=nb201_data.table, **kw)


def run_episode(env, seed, action_seed, max_steps=10_000):
    obs, info = env.reset(seed=seed)
    env.action_space.seed(action_seed)
    steps = [(obs, info)]
    for _ in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps.append((obs, reward, terminated, info))
        if terminated:
            break
    return steps


def test_gymnasium_checker_passes_and_env_is_registered(nb201_data):
    check_env(make(nb201_data, seed=0))
    env = gym.make(envs.ENV_ID, table=nb201_data.table, K=3, M=2)
    obs, _ = env.reset(seed=0)
    assert obs["tokens"].shape == (3, 6) and env.action_space.nvec.tolist() == [3, 6, 5, 6, 5]


def test_same_seed_and_actions_give_the_same_episode(nb201_data):
    a = run_episode(make(nb201_data), seed=3, action_seed=4)
    b = run_episode(make(nb201_data), seed=3, action_seed=4)
    assert len(a) == len(b) > 50
    for sa, sb in zip(a, b):
        for x, y in zip(sa, sb):
            if isinstance(x, dict) and "tokens" in x:
                for k in x:
                    np.testing.assert_array_equal(x[k], y[k])
            else:
                assert x == y
    c = run_episode(make(nb201_data), seed=5, action_seed=4)
    assert not np.array_equal(a[0][0]["tokens"], c[0][0]["tokens"])


def test_config_seed_is_used_by_the_first_plain_reset(nb201_data):
    x, _ = make(nb201_data, seed=11).reset()
    y, _ = make(nb201_data).reset(seed=11)
    np.testing.assert_array_equal(x["tokens"], y["tokens"])


def test_episode_invariants(nb201_data):
    """Centers never get worse, edges point weak -> better, costs sum to the clock, budget
    never crossed, reward = val(beta) - val(alpha), acceptance iff R > 0."""
    budget_s = nb201_data.budget_s(6000)
    env = make(nb201_data, K=4, M=4, budget_s=budget_s)
    obs, info = env.reset(seed=0)
    bench = env.benchmark
    env.action_space.seed(0)
    total_cost, queries = 0.0, 0
    while True:
        prev_val = env.graph.val_acc.copy()
        prev_centers = env.graph.centers.copy()
        action = env.action_space.sample()
        obs, reward, terminated, _, info = env.step(action)
        adj = obs["adj"]
        v = env.graph.val_acc
        assert (np.diag(adj) == 0).all() and adj.sum() == 4 * 3 / 2
        i, j = np.nonzero(adj)
        assert ((v[i] < v[j]) | ((v[i] == v[j]) & (i < j))).all()
        assert (v >= prev_val).all()
        np.testing.assert_allclose(obs["val_acc"], v / 100, rtol=1e-6)
        if terminated:
            assert info["queried"] is False and reward == 0.0
            np.testing.assert_array_equal(env.graph.centers, prev_centers)
            break
        k = action[0]
        beta = SPACE.apply_edits(prev_centers[k], action[1:].reshape(-1, 2))
        assert info["arch"] == SPACE.format(beta) and info["subspace"] == k
        expected = bench.query(beta, charge=False).val_acc
        assert info["val_acc"] == expected
        assert reward == pytest.approx(expected - prev_val[k])
        assert info["accepted"] == (reward > 0)
        if info["accepted"]:
            np.testing.assert_array_equal(env.graph.centers[k], beta)
        else:
            np.testing.assert_array_equal(env.graph.centers, prev_centers)
        total_cost += info["cost_s"]
        queries += 1
        assert info["sim_time_s"] == pytest.approx(total_cost) and info["queries"] == queries
        assert info["best_val_acc"] == v.max()
        assert SPACE.distance(prev_centers[k], beta) <= 4
    assert total_cost <= budget_s and queries == len(env.history) > 20
    # the refused query would have crossed the budget
    assert total_cost + bench.cost_s(SPACE.parse(info["arch"])) > budget_s
    assert env.best() == (info["best_arch"], info["best_val_acc"])


def test_subspace_update_off_keeps_centers_and_absolute_reward(nb201_data):
    env = make(nb201_data, update_subspaces=False, reward="absolute",
               budget_s=nb201_data.budget_s(3000))
    obs, _ = env.reset(seed=2)
    start = obs["tokens"].copy()
    env.action_space.seed(1)
    terminated = False
    while not terminated:
        obs, reward, terminated, _, info = env.step(env.action_space.sample())
        if not terminated:
            assert reward == info["val_acc"] and info["accepted"] is False
    np.testing.assert_array_equal(obs["tokens"], start)


def test_cache_makes_repeats_free(nb201_data):
    env = make(nb201_data, K=1, M=1, cache_queries=True)
    env.reset(seed=0)
    center = env.graph.centers[0]
    action = np.array([0, 0, (center[0] + 1) % 5])
    first = env.step(action)[4]
    repeat = env.step(action)[4]  # same beta whether or not the center moved to it
    assert first["arch"] == repeat["arch"] and first["cost_s"] > 0
    assert repeat["cost_s"] == 0.0 and env.benchmark.clock.cache_hits == 1
    assert repeat["sim_time_s"] == first["sim_time_s"]


def test_initial_centers_given_and_charged(nb201_data):
    archs = [SPACE.format(SPACE.sample(np.random.default_rng(i))) for i in range(2)]
    env = make(nb201_data, K=2, init_centers=archs, charge_init=True)
    obs, info = env.reset(seed=0)
    assert [SPACE.format(t) for t in obs["tokens"]] == archs
    assert info["queries"] == 2
    costs = [env.benchmark.cost_s(SPACE.parse(a)) for a in archs]
    assert info["sim_time_s"] == pytest.approx(sum(costs)) and min(costs) > 0
    free = make(nb201_data, K=2, init_centers=archs)
    assert free.reset(seed=0)[1]["sim_time_s"] == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"K": 0}, "K must be an integer >= 1, got 0"),
        ({"M": 0}, r"M must be an integer in 1..6 \(L = 6 positions\), got 0"),
        ({"M": 7}, "got 7"),
        ({"budget_s": 0}, "budget_s must be > 0 seconds, got 0"),
        ({"dataset": "svhn"}, "unknown dataset 'svhn'"),
        ({"space": "darts"}, "unknown search space 'darts'"),
        ({"reward": "acc"}, "unknown reward 'acc'; allowed: improvement, absolute"),
        ({"colour": 1}, r"unknown environment setting\(s\) \['colour'\]"),
        ({"K": 2, "init_centers": ["|none~0|"]}, "init_centers has 1 architectures; K = 2"),
        ({"K": 1, "init_centers": ["|x~0|"]}, "invalid NAS-Bench-201 architecture string"),
        ({"table": "/no/such/table.csv"}, "/no/such/table.csv"),
    ],
)
def test_bad_input_names_the_value(nb201_data, kwargs, message):
    kw = {"table": nb201_data.table, **kwargs}
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        DSMNASEnv(**kw)


def test_bad_action_shape_is_rejected(nb201_data):
    env = make(nb201_data, K=2, M=1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(3,\)"):
        env.step([0, 1])


def test_graph_edges_on_ties_and_replacement():
    adj = weak_to_better(np.array([50.0, 50.0, 40.0]))
    assert adj.tolist() == [[0, 1, 0], [0, 0, 0], [1, 1, 0]]
    g = SubspaceGraph(np.zeros((3, 6), dtype=int), [50.0, 50.0, 40.0])
    old = g.centers
    g.replace(2, np.ones(6, dtype=int), 60.0)
    assert g.adjacency.tolist() == [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert old[2].tolist() == [0] * 6 and g.best() == 2
    with pytest.raises(ValueError):
        g.centers[0, 0] = 3  # read-only: centers are immutable
