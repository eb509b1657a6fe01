"""N parallel workers (`EnvConfig.workers`): the budget clock's makespan, and the baselines that
run over it (random, asynchronous evolution, local search in synchronous batches)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks import Benchmark, BudgetClock
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.spaces.nb201 import NB201Space, code
from dsmnas.trainables.methods import check_method, run_method
from dsmnas.trainables.searchers.base import QueryLog
from dsmnas.trainables.searchers.evolution import run_evolution
from dsmnas.trainables.searchers.local_search import run_local
from dsmnas.trainables.searchers.random_search import run_random

SPACE = NB201Space()


class DelayBenchmark(Benchmark):
    """NB201's space; every architecture a distinct score (%), and a cost of 1..9 s that depends
    on the architecture (so queries finish out of the order they were asked)."""

    space = SPACE
    dataset = "fake"
    source = "fake"
    val_metric = "score"

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.scores = rng.permutation(15_625) / 156.25  # distinct, in [0, 100)
        self.costs = rng.integers(1, 10, size=15_625).astype(float)

    def _val(self, tokens):
        return self.scores[code(tokens)]

    def cost_s(self, tokens):
        return self.costs[code(tokens)]

    def report(self, tokens):
        return {}


def delay_benchmark(budget_s: float, workers: int) -> DelayBenchmark:
    """A `DelayBenchmark` whose clock has `budget_s` simulated seconds on `workers` workers."""
    bench = DelayBenchmark()
    bench.start_clock(EnvConfig(space="nb201", budget_s=budget_s, workers=workers))
    return bench


def config(workers: int = 1, seed: int = 0) -> EnvConfig:
    return EnvConfig(space="nb201", seed=seed, workers=workers)


# ---------------------------------------------------------------------------------- clock


def test_clock_makespan_on_hand_made_costs():
    clock = BudgetClock(budget_s=10.0, workers=2)
    charges = [clock.charge(i, c) for i, c in enumerate([4.0, 3.0, 2.0, 5.0])]
    assert all(answered for answered, _, _ in charges)
    # worker 0: 0-4; worker 1: 0-3, then 3-5 (it frees first); worker 0 again: 4-9
    assert clock.last == (0, 4.0, 9.0)
    assert clock.sim_time_s == 9.0 and clock.next_start_s == 5.0
    # 5 + 6 > 10 on the earliest free worker: refused, nothing charged
    assert clock.charge(9, 6.0) == (False, 0.0, False)
    assert (clock.queries, clock.sim_time_s, clock.next_start_s) == (4, 9.0, 5.0)
    assert clock.charge(9, 5.0)[0] and clock.last == (1, 5.0, 10.0)  # ends at the budget
    clock.barrier()
    assert clock.next_start_s == 10.0 and clock.charge(10, 0.5)[0] is False


def test_one_worker_is_the_sequential_clock():
    costs = np.random.default_rng(0).uniform(1, 100, size=300)
    one, seq = BudgetClock(budget_s=5000.0), 0.0
    for i, c in enumerate(costs):
        answered, _, _ = one.charge(i, float(c))
        if seq + c > 5000.0:
            assert not answered
            break
        before, seq = seq, seq + c
        assert answered and one.sim_time_s == seq and one.last == (0, before, seq)


def test_clock_state_round_trips_with_workers():
    clock = BudgetClock(budget_s=100.0, workers=3)
    for i, c in enumerate([5.0, 1.0, 2.0, 7.0]):
        clock.charge(i, c)
    copy = BudgetClock(budget_s=100.0, workers=3)
    copy.set_state(clock.get_state())
    assert [copy.charge(9, 4.0), copy.last] == [clock.charge(9, 4.0), clock.last]
    with pytest.raises(ConfigError, match="the saved clock had 3 workers, this one has 2"):
        BudgetClock(budget_s=100.0, workers=2).set_state(clock.get_state())


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_workers_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match=f"workers must be an integer >= 1, got {bad!r}"):
        EnvConfig(space="nb201", workers=bad).validate(6)


def test_methods_that_would_read_the_future_are_refused():
    for method in ("random", "evolution", "local"):
        check_method(method, config(workers=4))
    with pytest.raises(ConfigError, match="dsm does not run over parallel workers "
                                          r"\(workers = 4\); methods that do: random, "
                                          "evolution, local"):
        check_method("dsm", config(workers=4))
    check_method("dsm", config(workers=1))


# ------------------------------------------------------------------------------ searchers


def times(history):
    return history["start_s"].to_numpy(float), history["sim_time_s"].to_numpy(float)


@pytest.mark.parametrize("workers", [2, 4, 16])
def test_random_keeps_every_worker_busy(workers):
    bench = delay_benchmark(200.0, workers)
    h = run_random(config(workers), {}, benchmark=bench).history
    start, end = times(h)
    assert list(h.columns[-2:]) == ["worker", "start_s"]
    assert set(h["worker"]) == set(range(workers))
    assert np.allclose(end - start, h["cost_s"]) and end.max() <= 200.0
    # no worker runs two queries at once, and none idles before its last query
    for w in range(workers):
        mine = h[h["worker"] == w]
        s, e = times(mine)
        assert s[0] == 0.0 and np.array_equal(s[1:], e[:-1])


def test_async_evolution_knows_only_finished_results():
    """Every child's parent had finished when the child was asked for, and every member of
    the population a tournament drew from had too: the async driver never reads the future."""
    bench = delay_benchmark(400.0, workers=4)
    told_at = {}
    log = QueryLog(config(4), "probe", benchmark=bench)
    asked_at = []

    def ask():
        now = log.clock.next_start_s
        asked_at.append(now)
        # everything told so far had finished by now
        assert all(log.rows[s].sim_time_s <= now for s in told_at)
        # ... and every result finished by now was told (ties at `now` included)
        finished = {i for i, r in enumerate(log.rows) if r.sim_time_s <= now}
        assert finished == set(told_at)
        return SPACE.sample(np.random.default_rng(len(asked_at))), {}

    def tell(step, tokens, val):
        assert step not in told_at and val == log.rows[step].val_acc
        told_at[step] = log.clock.next_start_s

    log.run_async(ask, tell)
    assert len(log.rows) > 100 and len(told_at) < len(log.rows)
    h = log.history()
    assert np.array_equal(h["start_s"].to_numpy(float), asked_at[:len(h)])

    result = run_evolution(config(4), {}, benchmark=delay_benchmark(400.0, workers=4))
    h = result.history
    for step, parent in enumerate(h["parent"]):
        if not math.isnan(parent):
            assert h["sim_time_s"][int(parent)] <= h["start_s"][step]


def test_local_search_batches_wait_for_their_slowest_query():
    bench = delay_benchmark(300.0, workers=4)
    h = run_local(config(4), {}, benchmark=bench).history
    start, end = times(h)
    # queries start in batches: every batch's queries start together, after the previous
    # batch's last end (the barrier)
    batches = np.unique(start)
    assert len(batches) > 10
    for a, b in zip(batches[:-1], batches[1:]):
        in_a = start == a
        assert in_a.sum() <= 4 and end[in_a].max() == b
    # a restart's first batch is the start and three of its neighbours
    starts = h.index[h["parent"].isna()]
    for i in starts:
        same = h[h["start_s"] == h["start_s"][i]]
        assert (same["parent"].iloc[1:] == i).all()


@pytest.mark.parametrize("workers", [1, 4])
@pytest.mark.parametrize("method", ["random", "evolution", "local"])
def test_same_seed_same_history_for_each_N(method, workers):
    a = run_method(method, config(workers, seed=3), {})
    b = run_method(method, config(workers, seed=3), {})
    assert a.history.equals(b.history) and a.arch == b.arch
    if workers == 1:
        assert "worker" not in a.history  # the paper's protocol: the columns as before


def test_more_workers_finish_the_same_queries_sooner():
    """Same worker-seconds, N times the workers: random search makes about as many queries
    (up to the tail the budget cuts) in a makespan N times shorter."""
    one = run_random(config(1), {}, benchmark=delay_benchmark(4000.0, 1)).history
    four = run_random(config(4), {}, benchmark=delay_benchmark(1000.0, 4)).history
    assert one["sim_time_s"].max() <= 4000.0 and four["sim_time_s"].max() <= 1000.0
    assert abs(len(four) - len(one)) <= 4
    assert one["arch"].head(len(four) - 4).tolist() == four["arch"].head(len(four) - 4).tolist()


# ------------------------------------------------------------------------------ dsm-sync


def sync_env(workers: int, K: int = 2):
    """A K-center search on `DelayBenchmark`, its centers of middling scores (some
    neighbours better, some worse)."""
    from dsmnas.envs import DSMNASEnv
    from dsmnas.envs.graph import SubspaceGraph

    env = DSMNASEnv(space="nb201", K=K, M=1, seed=0, workers=workers)
    env.benchmark = delay_benchmark(1e6, workers)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    centers = [c for c in (SPACE.sample(rng) for _ in range(100))
               if 38 < env.benchmark.scores[code(c)] < 58][:K]
    env.graph = SubspaceGraph(np.stack(centers), [env.benchmark.scores[code(c)] for c in centers])
    return env


def edit_to(env, center: int, beta) -> np.ndarray:
    """The M = 1 action that turns center `center` into `beta` (distance 1)."""
    (p,) = np.flatnonzero(env.graph.centers[center] != beta)
    return np.array([center, p, beta[p]])


def test_sync_step_resolves_conflicts_on_one_center_by_the_best_proposal():
    from dsmnas.trainables.searchers.local_search import neighbours

    env = sync_env(workers=5)
    scores = env.benchmark.scores
    c0, v0 = env.graph.centers[0].copy(), env.graph.val_acc[0]
    c1 = env.graph.centers[1].copy()
    ranked = sorted(neighbours(SPACE, c0), key=lambda b: scores[code(b)])
    better = [b for b in ranked if scores[code(b)] > v0]
    worse = [b for b in ranked if scores[code(b)] < v0]
    assert len(better) >= 2 and worse
    second, best = better[-2], better[-1]
    other = neighbours(SPACE, c1)[0]
    actions = [edit_to(env, 0, second), edit_to(env, 0, best), edit_to(env, 0, worse[0]),
               edit_to(env, 1, other), edit_to(env, 0, best)]  # the best twice: first wins
    rewards, ended = env.step_batch(actions)
    assert not ended
    # rewards against the center as it was when the actions were sampled
    expected = [scores[code(second)] - v0, scores[code(best)] - v0, scores[code(worse[0])] - v0,
                scores[code(other)] - env.history[3].val_acc + env.history[3].reward,
                scores[code(best)] - v0]
    assert np.allclose(rewards, expected)
    assert np.array_equal(env.graph.centers[0], best) and env.graph.val_acc[0] == scores[code(best)]
    assert [r.accepted for r in env.history] == [False, True, False,
                                                 bool(scores[code(other)] > env.history[3].val_acc
                                                      - env.history[3].reward), False]
    h = env.history
    assert [dict(r.extra)["worker"] for r in h] == [0, 1, 2, 3, 4]
    assert {dict(r.extra)["start_s"] for r in h} == {0.0}
    # the barrier: the next batch starts when the slowest of this one ended
    assert env.benchmark.clock.next_start_s == max(r.sim_time_s for r in h)


def test_sync_step_ends_the_search_on_a_refused_query():
    env = sync_env(workers=3)
    env.benchmark.clock.budget_s = 12.0
    while True:
        actions = [env.action_space.sample() for _ in range(3)]
        rewards, ended = env.step_batch(actions)
        if ended:
            break
    assert env.episodes_finished == 1
    graph, history, clock = env.last_finished
    assert clock["sim_time_s"] <= 12.0 and len(history) == clock["queries"]
    assert len(history) % 3 != 0 or rewards.min() == 0.0  # some query of the last batch refused


def test_dsm_sync_is_deterministic_and_runs_in_batches_of_N():
    cfg = EnvConfig(space="nb201", seed=1, workers=4)
    a = run_method("dsm-sync", cfg, {})
    b = run_method("dsm-sync", cfg, {})
    assert a.history.equals(b.history) and a.arch == b.arch and a.queries == len(a.history)
    start = a.history["start_s"].to_numpy(float)
    _, counts = np.unique(start, return_counts=True)
    assert counts.max() == 4 and (counts[:-1] == 4).all()  # full batches, the last maybe not
    assert a.sim_time_s <= a.config["budget_s"]
    # one worker, the same makespan budget: about a quarter of the queries
    one = run_method("dsm-sync", EnvConfig(space="nb201", seed=1, workers=1), {})
    assert "worker" not in one.history and 2 * one.queries < a.queries < 6 * one.queries


def test_dsm_sync_with_one_worker_is_dsm_draw_for_draw():
    cfg = EnvConfig(space="nb201", seed=2)
    sync, dsm = run_method("dsm-sync", cfg, {}), run_method("dsm", cfg, {})
    assert sync.history.equals(dsm.history) and sync.arch == dsm.arch


@pytest.mark.parametrize("method", ["ppo", "ppo-flat", "appo"])
def test_rllib_agents_run_over_workers_in_synchronous_rounds(method):
    """The RLlib agents over 4 workers: the same vector env as dsm-sync (rounds of 4 queries
    from one graph), the same history from the same seed (APPO's Learner thread makes it
    irreproducible, see trainables.agents: rounds only), one worker the plain env."""
    from dsmnas.envs import DSMNASEnv
    from dsmnas.trainables.agents import agent_config
    from dsmnas.trainables.search import is_vector_search

    cfg = EnvConfig(space="nb201", seed=3, workers=4)
    a = run_method(method, cfg, {})
    _, counts = np.unique(a.history["start_s"].to_numpy(float), return_counts=True)
    assert counts.max() == 4 and (counts[:-1] == 4).all() and a.sim_time_s <= a.config["budget_s"]
    if method != "appo":
        b = run_method(method, cfg, {})
        assert a.history.equals(b.history) and a.arch == b.arch
    assert is_vector_search(agent_config("ppo", cfg))
    one = agent_config("ppo", EnvConfig(space="nb201", seed=3))
    assert one.env is DSMNASEnv and one.num_envs_per_env_runner == 1
    with pytest.raises(ConfigError, match=f"{method}: a synchronous search over 4 workers "
                                          "does not support over_limit='penalty'"):
        check_method(method, EnvConfig(space="nb201", workers=4, over_limit="penalty",
                                       limits={"latency_ms": 10.0}))


# ----------------------------------------------------------------------------- dsm-async


def test_dsm_async_trains_each_action_on_its_own_reward_once_it_is_known(monkeypatch):
    """On a benchmark whose queries take 1-9 s, four workers finish out of order: every
    update the learner takes is one step's own (action, reward), taken only once that
    reward's end time has passed the next draw's start, in the order the rewards finished."""
    from dsmnas.trainables.ray_utils import build_algo
    from dsmnas.trainables.search import local_env
    from dsmnas.trainables.workers import async_config

    monkeypatch.setattr("dsmnas.envs.dsm_env.make_benchmark", lambda cfg: delay_benchmark(300.0, 4))
    algo = build_algo(async_config(config(4, seed=0)))
    env = local_env(algo)
    updates = []
    update = algo.learner_group.update

    def spy(episodes, **kwargs):
        (chunk,) = episodes
        info = chunk.get_infos(-1)
        updates.append((info["end_s"], env.benchmark.clock.next_start_s,
                        float(chunk.get_rewards(-1)), info["arch"], chunk.get_actions(-1)))
        return update(episodes=episodes, **kwargs)

    algo.learner_group.update = spy
    try:
        while env.episodes_finished == 0:
            algo.train()
    finally:
        algo.stop()
    _, history, _ = env.last_finished
    by_end = {(r.sim_time_s, r.arch): r for r in history}
    assert len(history) > 100 and len(updates) >= len(history) - 4
    for end, now, reward, arch, action in updates[:-1]:  # the last: the refused query
        row = by_end[(end, arch)]
        assert reward == row.reward and end <= now
        assert row.subspace == int(action[0])
    ends = [u[0] for u in updates[:-1]]
    assert ends == sorted(ends)  # in the order the rewards became known ...
    asked = [r.sim_time_s for r in history]
    assert asked != sorted(asked)  # ... which is not the order the actions were drawn


def test_async_env_draws_from_the_graph_of_the_start_time():
    """A result changes the graph only once it is finished: after every step, the queries
    still running are exactly those that end after the next draw's start, and only finished
    queries have replaced a center."""
    from dsmnas.envs.workers import AsyncDSMNASEnv

    env = AsyncDSMNASEnv(space="nb201", K=3, M=1, seed=0, workers=4)
    env.benchmark = delay_benchmark(200.0, 4)
    env.reset(seed=0)
    steps = 0
    while True:
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        if terminated:
            break
        steps += 1
        now = info["next_start_s"]
        running = {step for _, step, *_ in env._running}
        assert running == {i for i, r in enumerate(env.history) if r.sim_time_s > now}
        assert not any(env.history[i].accepted for i in running)
        assert reward == env.history[-1].reward and info["end_s"] == env.history[-1].sim_time_s
    assert steps > 50 and any(r.accepted for r in env.history)
    assert not env._running  # the end delivers what was still running


def test_cli_refuses_workers_for_a_sequential_method_in_one_line(capsys):
    from dsmnas.experiments.cli import main

    for argv, message in [
        (["compare", "--methods", "random,dsm", "--workers", "4"],
         "dsm does not run over parallel workers (workers = 4)"),
        (["compare", "--methods", "random", "--workers", "0"],
         "workers must be an integer >= 1, got 0"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err
