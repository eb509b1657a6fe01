"""The baselines' multi-objective forms (`--objectives`): multi-objective regularized evolution,
Pareto local search and NSGA-II (`trainables/searchers/`), on the embedded NAS-Bench-201 data
with `val_acc:max,latency_s:min`: their fronts, each form's rules replayed from its history,
seeding, a latency limit, parallel workers, and their refusals before anything runs."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks import make_benchmark
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.objectives import visited_front
from dsmnas.envs.spaces import hamming
from dsmnas.experiments.cli import main
from dsmnas.trainables.methods import METHODS, check_method, run_method
from dsmnas.trainables.searchers.local_search import neighbours

LATENCY = "val_acc:max,latency_s:min"
BUDGET_S = 120_000.0  # about 65 queries on the embedded data (1,828 s a query on cifar10)
LIMIT = 0.012  # latency_s: 7 % of NAS-Bench-201's architectures on cifar10 are within it
MO = ("evolution", "local", "nsga2")
SMALL = {"evolution": {}, "local": {}, "nsga2": {"population_size": 8}}
"""Settings for the small budget: NSGA-II with 8 members makes several generations."""

needs_mo = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("moocore", "pymoo")),
    reason="needs the extra mo (moocore, pymoo)")


def config(seed=0, **extra) -> EnvConfig:
    return EnvConfig(objectives=LATENCY, seed=seed, **{"budget_s": BUDGET_S, **extra})


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


# -- what every multi-objective form answers ------------------------------------------------

@needs_mo
@pytest.mark.parametrize("method", MO)
@pytest.mark.parametrize("limited, workers", [(False, 1), (True, 1), (False, 2)])
def test_the_front_holds_non_dominated_feasible_architectures_with_the_benchmarks_values(
        method, limited, workers, tmp_path):
    limits = {"latency_s": LIMIT} if limited else None
    cfg = config(limits=limits, workers=workers)
    result = run_method(method, cfg, SMALL[method])
    result.save(tmp_path)
    front = pd.read_csv(tmp_path / "front.csv")
    bench = make_benchmark(cfg)
    obj = bench.objectives
    h = result.history
    assert list(front.columns) == ["arch", "val_acc", "latency_s"] and len(front) >= 1
    values = front[["val_acc", "latency_s"]].to_numpy()
    assert obj.nondominated(values).all()  # mutually non-dominated
    assert front["arch"].is_unique and set(front["arch"]) <= set(h["arch"])
    for row in front.itertuples(index=False):  # the benchmark's own values, within the limit
        tokens = bench.space.parse(row.arch)
        assert row.val_acc == bench._val(tokens)
        assert row.latency_s == bench.metric("latency_s", tokens)
        assert bench.feasible(tokens)
    # nothing the search visited within the limit dominates a member of the front
    ok = h[h["latency_s"] <= LIMIT] if limited else h
    for row in front.itertuples(index=False):
        assert not ((ok["val_acc"] >= row.val_acc) & (ok["latency_s"] <= row.latency_s)
                    & ((ok["val_acc"] > row.val_acc) | (ok["latency_s"] < row.latency_s))).any()
    assert front["arch"].tolist() == visited_front(h, obj, bench.limits)["arch"].tolist()
    assert result.front_figures["hypervolume_val"] == pytest.approx(obj.hypervolume(values))
    assert result.front_figures["igd_plus_val"] > 0
    assert result.sim_time_s <= BUDGET_S and len(h) == result.queries
    if workers > 1:
        assert set(h["worker"]) == {0, 1}


@needs_mo
@pytest.mark.parametrize("method", MO)
def test_the_same_seed_gives_the_same_history(method):
    a = run_method(method, config(seed=3), SMALL[method]).history
    b = run_method(method, config(seed=3), SMALL[method]).history
    pd.testing.assert_frame_equal(a, b)
    c = run_method(method, config(seed=4), SMALL[method]).history
    assert a["arch"].tolist() != c["arch"].tolist()


def normalised(h: pd.DataFrame, bench) -> np.ndarray:
    return bench.objectives.normalise(h[["val_acc", "latency_s"]].to_numpy(float))


# -- evolution: the parent is the best drawn member by rank, then crowding -----------------

@needs_mo
@pytest.mark.parametrize("limited", [False, True])
def test_evolution_parents_are_of_the_populations_first_rank_and_least_crowded(limited):
    """With 200 draws from 5 members every member is drawn (all but surely), so the parent is
    a member of the population's first non-dominated rank with the largest crowding
    distance; over a limit, infeasible members rank last."""
    from dsmnas.trainables.searchers.pareto import rank_and_crowding

    P = 5
    limits = {"latency_s": LIMIT} if limited else None
    cfg = config(seed=1, limits=limits)
    h = run_method("evolution", cfg, {"population_size": P, "sample_size": 200}).history
    bench = make_benchmark(cfg)
    points = normalised(h, bench)
    feasible = (h["latency_s"] <= LIMIT).to_numpy() if limited else np.ones(len(h), bool)
    assert h.parent[:P].isna().all() and feasible[:P].all()  # feasible samples first
    assert h.parent[P:].notna().all() and len(h) > 3 * P
    for t in range(P, len(h)):
        parent = int(h.parent[t])
        assert t - P <= parent < t  # one worker: the population is the last P queries
        assert hamming(bench.space.parse(h.arch[t]), bench.space.parse(h.arch[parent])) == 1
        rank, crowding = rank_and_crowding(points[t - P:t], feasible[t - P:t])
        i = parent - (t - P)
        assert rank[i] == rank.min() and crowding[i] == crowding[rank == rank.min()].max()
        if feasible[t - P:t].any():
            assert feasible[parent]
    if limited:
        assert not feasible.all()  # children over the limit are queried and charged


@needs_mo
def test_rank_and_crowding_on_a_hand_made_set():
    from dsmnas.trainables.searchers.pareto import covers, dominates, rank_and_crowding

    points = np.array([[0.1, 0.9], [0.3, 0.5], [0.6, 0.2], [0.9, 0.1],  # the first front
                       [0.4, 0.6], [0.7, 0.3],                          # the second
                       [0.8, 0.8],                                      # the third
                       [0.0, 0.0]])                                     # infeasible
    feasible = np.array([True] * 7 + [False])
    rank, crowding = rank_and_crowding(points, feasible)
    assert rank.tolist() == [0, 0, 0, 0, 1, 1, 2, 3]
    # NSGA-II's crowding distance: extremes infinite, inner points the mean over objectives of
    # the normalised gap between their neighbours, (0.6 - 0.1) / 0.8 and (0.9 - 0.2) / 0.8
    # for (0.3, 0.5)
    assert crowding[[0, 3, 4, 5, 6]].tolist() == [math.inf] * 5 and crowding[7] == 0
    assert crowding[1] == pytest.approx(((0.6 - 0.1) / 0.8 + (0.9 - 0.2) / 0.8) / 2)
    assert crowding[2] == pytest.approx(((0.9 - 0.3) / 0.8 + (0.5 - 0.1) / 0.8) / 2)
    a, b = np.array([0.1, 0.5]), np.array([0.2, 0.5])
    assert dominates(a, b) and not dominates(b, a) and not dominates(a, a)
    assert covers(a, a) and covers(a, b) and not covers(b, a)
    rank, crowding = rank_and_crowding(points[:2], np.array([False, False]))
    assert rank.tolist() == [0, 0] and crowding.tolist() == [0, 0]


# -- local: Pareto local search, replayed from its history -----------------------------------

@needs_mo
@pytest.mark.parametrize("limit", [None, 0.009])
def test_pareto_local_search_follows_its_archive(limit):
    """Replay the archive from the history: a neighbour enters it exactly when it is within
    the limit and no member weakly dominates it (`accepted`), each neighbourhood explored is
    an unexplored member's, whole, in a random order, and a restart comes only when every
    member has been explored (under the tight limit, 1.7 % of the space, the archives are
    small: seed 2 restarts twice in this budget)."""
    cfg = config(seed=2, limits=None if limit is None else {"latency_s": limit},
                 budget_s=400_000.0)
    h = run_method("local", cfg).history
    bench = make_benchmark(cfg)
    space = bench.space
    points = normalised(h, bench)
    feasible = (h["latency_s"] <= (limit or math.inf)).to_numpy()
    archive: dict[int, np.ndarray] = {}
    explored: list[int] = []
    restarts = shuffled = done = 0

    def whole(member: int) -> None:
        nonlocal shuffled, done
        done += 1
        children = h.arch[h.parent == member].tolist()
        order = [space.format(n) for n in neighbours(space, space.parse(h.arch[member]))]
        assert sorted(children) == sorted(order)
        shuffled += children != order

    for t in range(len(h)):
        parent = h.parent[t]
        if np.isnan(parent):  # a start: every member of the archive so far was explored
            if t > 0:
                whole(explored[-1])
                assert set(archive) <= set(explored)
                restarts += 1
            assert h.accepted[t] and feasible[t]
            archive, explored = {t: points[t]}, []
            continue
        parent = int(parent)
        if not explored or explored[-1] != parent:  # the next member to explore
            if explored:
                whole(explored[-1])
            assert parent in archive and parent not in explored
            explored.append(parent)
        assert hamming(space.parse(h.arch[t]), space.parse(h.arch[parent])) == 1
        enters = feasible[t] and not any(np.all(p <= points[t]) for p in archive.values())
        assert bool(h.accepted[t]) == enters
        if enters:
            archive = {s: p for s, p in archive.items()
                       if not (np.all(points[t] <= p) and np.any(points[t] < p))}
            archive[t] = points[t]
    assert done >= 5 and shuffled >= done - 1
    assert restarts == (0 if limit is None else 2)


@needs_mo
def test_pareto_local_search_refuses_first_improvement():
    with pytest.raises(ConfigError, match="^local with --objectives is Pareto local search, "
                                          "which queries every neighbourhood whole: "
                                          "first_improvement does not apply$"):
        check_method("local", config(), {"first_improvement": False})
    check_method("local", EnvConfig(seed=0), {"first_improvement": False})


# -- nsga2 ----------------------------------------------------------------------------------

@needs_mo
@pytest.mark.parametrize("workers", [1, 2])
def test_nsga2_queries_whole_generations_from_a_feasible_start(workers):
    cfg = config(seed=5, limits={"latency_s": LIMIT}, workers=workers)
    h = run_method("nsga2", cfg, {"population_size": 8}).history
    sizes = h.groupby("generation").size()
    last = sizes.index.max()
    assert sizes.index.tolist() == list(range(last + 1)) and last >= 3
    assert sizes[0] == 8 and (sizes[:last] == 8).all()  # the last one cut by the budget
    assert (h[h.generation == 0]["latency_s"] <= LIMIT).all()  # feasible samples first
    assert h.generation.is_monotonic_increasing
    if workers > 1:  # a generation starts when the one before has finished
        for g in range(1, last + 1):
            assert h[h.generation == g]["start_s"].min() >= \
                h[h.generation == g - 1]["sim_time_s"].max()


@needs_mo
def test_nsga2_genome_maps_genes_to_the_allowed_ops():
    from dsmnas.trainables.searchers.nsga2 import Genome

    bench = make_benchmark(config())
    genome = Genome(bench.space)
    assert genome.positions == list(range(6)) and genome.sizes.tolist() == [5] * 6
    rng = np.random.default_rng(0)
    for _ in range(20):
        tokens = bench.space.sample(rng)
        assert np.array_equal(genome.decode(genome.encode(tokens)), tokens)


def test_nsga2_refuses_without_objectives_in_one_line(capsys, monkeypatch):
    with pytest.raises(ConfigError, match="^nsga2 searches several objectives: pass "
                                          "--objectives"):
        check_method("nsga2", EnvConfig(seed=0))
    monkeypatch.setattr("dsmnas.trainables.ray_utils.ensure_ray",
                        lambda *a, **k: pytest.fail("Ray must not start"))
    assert exit_code(["compare", "--methods", "nsga2", "--seeds", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nsga2 searches several objectives: pass --objectives" in err[0]


def test_the_forms_that_need_pymoo_refuse_without_it(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pymoo" else find_spec(name, *a))
    cfg = EnvConfig(objectives=LATENCY, seed=0)
    for method, needed_by in (("nsga2", "nsga2"), ("evolution", "evolution with --objectives")):
        with pytest.raises(ConfigError, match=f"^{needed_by} needs the package 'pymoo', which "
                                              f"is not installed: pip install 'dsmnas\\[mo\\]'$"):
            check_method(method, cfg)
    check_method("local", cfg)  # Pareto local search needs moocore alone
    check_method("evolution", EnvConfig(seed=0))  # the single-objective form needs neither


def test_the_registry_marks_the_multi_objective_forms():
    assert {name for name, m in METHODS.items() if m.objectives} == {
        "random", *MO, "dsm", "dsm-hv", "ppo-flat", "dsm-sync", "dsm-async"}
    assert all(METHODS[name].workers for name in MO)


# -- what the multi-objective form buys -------------------------------------------------------

@needs_mo
def test_multi_objective_evolution_finds_a_larger_front_than_the_single_objective_one():
    """Measured on the embedded data, cifar10, the default budget (400,000 s, about 215
    queries), seeds 0-4: hypervolume_val 0.5989 +- 0.0086 (each seed between 0.590 and
    0.613) against 0.5182 +- 0.0685 for the front of what the single-objective form visited
    (each seed between 0.416 and 0.593)."""
    mo, single = [], []
    for seed in range(5):
        mo.append(run_method("evolution", EnvConfig(objectives=LATENCY, seed=seed))
                  .front_figures["hypervolume_val"])
        h = run_method("evolution", EnvConfig(seed=seed)).history
        bench = make_benchmark(EnvConfig(objectives=LATENCY, seed=seed))
        h["latency_s"] = [bench.metric("latency_s", bench.space.parse(a)) for a in h["arch"]]
        front = visited_front(h, bench.objectives)
        single.append(bench.objectives.hypervolume(front[["val_acc", "latency_s"]]))
    assert np.mean(mo) == pytest.approx(0.5989, abs=5e-4)
    assert np.mean(single) == pytest.approx(0.5182, abs=5e-4)
    assert np.mean(mo) > np.mean(single) + 0.05
