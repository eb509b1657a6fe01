"""The baseline searchers of `trainables.searchers`: shared invariants on NAS-Bench-201 (the
shared table, else the embedded data), and each method's rules on hand-made benchmarks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dsmnas.envs import HISTORY_COLUMNS, DSMNASEnv, EnvConfig
from dsmnas.envs.benchmarks import Benchmark, NB201Benchmark
from dsmnas.envs.spaces import hamming
from dsmnas.envs.spaces.nb201 import NB201Space, code
from dsmnas.trainables.methods import run_method
from dsmnas.trainables.searchers.evolution import run_evolution
from dsmnas.trainables.searchers.local_search import neighbours, run_local
from dsmnas.trainables.searchers.reinforce import run_reinforce
from dsmnas.trainables.searchers.subspace_random import sample_ball

SPACE = NB201Space()
BUDGET_S = 3000  # on the table; `nb201_data.budget_s` scales it for the embedded data
FAST = ("random", "reinforce", "evolution", "local", "random-update")


class FakeBenchmark(Benchmark):
    """NB201's space scored by `score(tokens)`; every query costs 1 s."""

    space = SPACE
    dataset = "fake"
    source = "fake"
    val_metric = "score"

    def __init__(self, score):
        self.score = score

    def _val(self, tokens):
        return float(self.score(np.asarray(tokens)))

    def cost_s(self, tokens):
        return 1.0

    def report(self, tokens):
        return {}


def fake_benchmark(score, queries: int, cache_queries: bool = False) -> FakeBenchmark:
    """A `FakeBenchmark` whose clock has time for `queries` charged queries."""
    bench = FakeBenchmark(score)
    bench.start_clock(EnvConfig(budget_s=float(queries), cache_queries=cache_queries))
    return bench


def distinct_scores(seed=0):
    """Every architecture a different score (a random permutation of 0..15624)."""
    table = np.random.default_rng(seed).permutation(15_625).astype(float)
    return lambda t: table[code(t)]


def tokens(arch: str) -> np.ndarray:
    return SPACE.parse(arch)


def dist(a: str, b: str) -> int:
    return hamming(tokens(a), tokens(b))


# ------------------------------------------------------------------------ shared invariants
@pytest.fixture(scope="module")
def table_runs(nb201_data):
    """Each fast method on NAS-Bench-201: seed 0 twice, seed 1 once; report() calls recorded."""
    calls = []
    report = NB201Benchmark.report

    def spy(self, t):
        calls.append(self.clock.queries)
        return report(self, t)

    NB201Benchmark.report = spy
    try:
        runs = {}
        for m in FAST:
            cfg = EnvConfig(table=nb201_data.table, budget_s=nb201_data.budget_s(BUDGET_S), seed=0)
            calls.clear()
            a = run_method(m, cfg)
            report_calls = list(calls)
            b = run_method(m, cfg)
            c = run_method(m, EnvConfig(table=nb201_data.table, budget_s=cfg.budget_s, seed=1))
            runs[m] = (a, b, c, report_calls)
    finally:
        NB201Benchmark.report = report
    return runs


@pytest.mark.parametrize("method", FAST)
def test_budget_answer_history_and_seeding(table_runs, nb201_data, method):
    a, b, c, report_calls = table_runs[method]
    h = a.history
    budget_s = nb201_data.budget_s(BUDGET_S)
    assert list(h.columns[: len(HISTORY_COLUMNS)]) == list(HISTORY_COLUMNS)
    assert SPACE.format(tokens(a.arch)) == a.arch
    assert a.sim_time_s <= budget_s
    assert a.sim_time_s == pytest.approx(h.cost_s.sum())
    assert h.sim_time_s.iloc[-1] == pytest.approx(a.sim_time_s)
    assert a.queries == len(h) > 10 and list(h.step) == list(range(len(h)))
    # test accuracy is looked up once, after the last query (the answer is the best visited)
    assert report_calls == [a.queries]
    nb201_data.assert_test_acc(a.test_acc)
    if method == "random-update":
        # answered like DSM-NAS: the best center, which may be an (uncharged) initial one
        assert a.val_acc >= h.val_acc.max()
        assert a.arch in set(h.arch) | set(a.final_centers)
    else:
        assert a.val_acc == h.val_acc.max()
        assert a.arch == h.arch[h.val_acc.idxmax()]
    assert a.config["method"] == method and a.config["budget_s"] == budget_s
    assert a.config["env"]["seed"] == 0 and a.config["cache_queries"] is False
    pd.testing.assert_frame_equal(a.history, b.history)
    assert (a.arch, a.val_acc) == (b.arch, b.val_acc)
    assert not a.history.arch.equals(c.history.arch)


def test_unknown_and_bad_settings_are_refused(nb201_data):
    cfg = EnvConfig(table=nb201_data.table, budget_s=nb201_data.budget_s(BUDGET_S), seed=0)
    with pytest.raises(ValueError, match=r"unknown evolution setting\(s\) \['bogus'\]; allowed: population_size, sample_size"):
        run_method("evolution", cfg, {"bogus": 1})
    with pytest.raises(ValueError, match="random-mined.*'lrr'.*entropy.*mine_fraction"):
        run_method("random-mined", cfg, {"lrr": 1})
    with pytest.raises(ValueError, match="random-mined does not support charge_init"):
        run_method("random-mined", EnvConfig(table=nb201_data.table, seed=0, charge_init=True))
    with pytest.raises(ValueError, match="population_size must be an integer >= 1"):
        run_method("evolution", cfg, {"population_size": 0})
    with pytest.raises(ValueError, match="controller 'gru'; allowed: table, lstm"):
        run_method("reinforce", cfg, {"controller": "gru"})


# ------------------------------------------------------------------------------- evolution
def run_fake_evolution(population_size, sample_size, queries=200, seed=0):
    bench = fake_benchmark(distinct_scores(), queries)
    settings = {"population_size": population_size, "sample_size": sample_size}
    return run_evolution(EnvConfig(seed=seed), settings, benchmark=bench).history


def test_evolution_population_aging_and_tournament():
    P = 5
    h = run_fake_evolution(P, sample_size=50)
    assert len(h) == 200 and h.parent[:P].isna().all() and h.parent[P:].notna().all()
    best_aged_out = False
    for t in range(P, len(h)):
        parent = int(h.parent[t])
        window = h.iloc[t - P : t]  # the population: the P most recent members
        assert t - P <= parent < t
        assert dist(h.arch[t], h.arch[parent]) == 1
        # 50 draws from 5 members: the tournament all but surely sees the best one (the
        # population may hold one architecture twice: compare accuracies)
        assert h.val_acc[parent] == window.val_acc.max()
        best_aged_out |= h.val_acc[:t].idxmax() < t - P
    # the best architecture so far did leave the population at some point (aging, not elitism)
    assert best_aged_out
    # a tournament of one: the parent is a uniform member, the best only ~1/P of the time
    h1 = run_fake_evolution(P, sample_size=1)
    best = [h1.val_acc[int(h1.parent[t])] == h1.val_acc[t - P : t].max() for t in range(P, len(h1))]
    assert 0.05 < np.mean(best) < 0.45
    # a budget that ends inside the initial population
    assert len(run_fake_evolution(P, 3, queries=3)) == 3


# ---------------------------------------------------------------------------- local search
TARGET = SPACE.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|")


def onemax(t):
    """Positions equal to TARGET: unimodal, TARGET the only local (and global) optimum."""
    return float((np.asarray(t) == TARGET).sum())


def test_local_search_moves_to_first_better_neighbour_and_restarts_at_optimum():
    h = run_local(EnvConfig(seed=0), {}, benchmark=fake_benchmark(onemax, 400)).history
    assert np.isnan(h.parent[0]) and h.accepted[0]
    current, tried, restarts = 0, [], 0
    for t in range(1, len(h)):
        if np.isnan(h.parent[t]):  # a restart: the current architecture is a local optimum
            assert h.val_acc[current] == 6 and len(tried) == 24 == len(set(tried))
            assert max(h.val_acc[i] for i in tried) <= h.val_acc[current]
            assert h.accepted[t]
            current, tried, restarts = t, [], restarts + 1
            continue
        assert h.parent[t] == current and dist(h.arch[t], h.arch[current]) == 1
        tried.append(t)
        better = h.val_acc[t] > h.val_acc[current]
        assert h.accepted[t] == better  # moves at the first better one, never past it
        if better:
            current, tried = t, []
    assert restarts >= 3
    # an optimum's 24 neighbours, all queried, in a random order (not the generating one)
    center = h.arch[h.accepted & (h.val_acc == 6)].iloc[0]
    step = h.index[h.arch == center][0]
    order = h.arch[h.parent == step].tolist()
    assert sorted(order) == sorted(SPACE.format(n) for n in neighbours(SPACE, tokens(center)))
    assert order != [SPACE.format(n) for n in neighbours(SPACE, tokens(center))]


def test_local_search_charges_repeats_unless_cached_and_best_improvement():
    for cache in (False, True):
        bench = fake_benchmark(onemax, 200, cache_queries=cache)
        h = run_local(EnvConfig(seed=1, cache_queries=cache), {}, benchmark=bench).history
        repeated = h.arch.duplicated()
        assert repeated.any()  # the architecture just left is a neighbour of the new one
        assert (h.cost_s[repeated] == (0.0 if cache else 1.0)).all()
        assert (h.cost_s[~repeated] == 1.0).all()
    h = run_local(EnvConfig(seed=0), {"first_improvement": False},
                  benchmark=fake_benchmark(distinct_scores(), 300)).history
    for t in h.index[h.accepted & h.parent.notna()]:
        siblings = h[h.parent == h.parent[t]]
        assert len(siblings) == 24 and h.val_acc[t] == siblings.val_acc.max()


# ------------------------------------------------------------------------------ reinforce
def conv3x3_count(t):
    return 50.0 + 10.0 * float((np.asarray(t) == 3).sum())


@pytest.mark.parametrize("controller", ["table", "lstm"])
def test_reinforce_learns_that_one_op_is_always_better(controller):
    bench = fake_benchmark(conv3x3_count, 600)
    h = run_reinforce(EnvConfig(seed=0), {"controller": controller}, benchmark=bench).history
    share = np.array([(tokens(a) == 3).mean() for a in h.arch])
    assert share[:50].mean() < 0.35  # about uniform at first (1/5)
    assert share[-50:].mean() > 0.7
    assert h.val_acc[-50:].mean() > h.val_acc[:50].mean() + 25
    # the baseline: bias-corrected EMA (momentum 0.9) updated with R before it is used
    num = den = 0.0
    for r, b in zip(h.reward, h.baseline):
        num, den = 0.9 * num + 0.1 * r, 0.9 * den + 0.1
        assert b == pytest.approx(num / den)
    assert h.baseline[0] == h.reward[0] and (h.reward == h.val_acc).all()


# ---------------------------------------------------------------------- subspace baselines
def test_random_update_follows_the_env_rules(table_runs, nb201_data):
    a = table_runs["random-update"][0]
    env = DSMNASEnv(table=nb201_data.table, budget_s=nb201_data.budget_s(BUDGET_S), seed=0)
    env.reset()
    centers = [SPACE.format(c) for c in env.graph.centers]
    vals = list(env.graph.val_acc)
    for row in a.history.itertuples():
        i = int(row.subspace)
        assert dist(row.arch, centers[i]) <= 4  # M = 4 edits
        assert row.accepted == (row.val_acc > vals[i]) == (row.reward > 0)
        if row.accepted:
            centers[i], vals[i] = row.arch, row.val_acc
    assert a.final_centers == centers and a.val_acc == max(vals)


def test_sample_ball_is_uniform_over_the_ball_without_its_center():
    rng = np.random.default_rng(0)
    center = SPACE.sample(rng)
    assert {SPACE.format(sample_ball(SPACE, center, 1, rng)) for _ in range(400)} == {
        SPACE.format(n) for n in neighbours(SPACE, center)
    }
    # M = 2: 24 points at distance 1 and 6*5/2 * 4**2 = 240 at distance 2, 264 in all
    draws = [SPACE.format(sample_ball(SPACE, center, 2, rng)) for _ in range(26_400)]
    counts = pd.Series(draws).value_counts()
    assert len(counts) == 264 and counts.min() > 55 and counts.max() < 150
    d = np.array([dist(x, SPACE.format(center)) for x in counts.index])
    assert counts[d == 1].sum() / len(draws) == pytest.approx(24 / 264, abs=0.01)


def test_random_mined_spends_one_budget_and_stays_in_the_mined_subspaces(nb201_data, ray_session):
    budget_s = nb201_data.budget_s(BUDGET_S)
    cfg = EnvConfig(table=nb201_data.table, budget_s=budget_s, seed=0)
    a = run_method("random-mined", cfg)
    h = a.history
    phases = h.phase.tolist()
    assert phases == sorted(phases) and set(phases) == {"dsm", "random"}  # dsm rows first
    dsm, rnd = h[h.phase == "dsm"], h[h.phase == "random"]
    assert a.config["mine"]["budget_s"] == budget_s / 2 >= dsm.sim_time_s.max()
    assert a.config["mine"]["queries"] == len(dsm) and len(rnd) > 5
    assert a.sim_time_s <= budget_s and a.sim_time_s == pytest.approx(h.cost_s.sum())
    assert a.queries == len(h)
    for row in rnd.itertuples():
        assert 1 <= dist(row.arch, a.final_centers[int(row.subspace)]) <= cfg.M
    assert a.val_acc == max(a.config["mine"]["val_acc"], h.val_acc.max())
    assert a.arch == (a.config["mine"]["arch"] if a.val_acc == a.config["mine"]["val_acc"]
                      else h.arch[h.val_acc.idxmax()])
    b = run_method("random-mined", cfg)
    pd.testing.assert_frame_equal(a.history, b.history)
    c = run_method("random-mined", EnvConfig(table=nb201_data.table, budget_s=budget_s, seed=1))
    assert not c.history.arch.equals(a.history.arch)
    assert math.isnan(rnd.reward.iloc[0])
