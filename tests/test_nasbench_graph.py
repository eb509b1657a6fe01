"""The NAS-Bench-Graph space and benchmark (PyPI `nas-bench-graph`, its light files)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from nas_bench_graph import Arch, gnn_list, gnn_list_proteins, light_read, link_list

from dsmnas.envs import DSMNASEnv, EnvConfig
from dsmnas.envs.benchmarks import make_benchmark
from dsmnas.envs.benchmarks.nasbench_graph import DATASETS, PROTEINS, load_nasbench_graph
from dsmnas.envs.registry import get_space
from dsmnas.envs.spaces.nasbench_graph import (
    SKIP, NASBenchGraphProteinsSpace, NASBenchGraphSpace, tokens_of_hash, vector_code,
)
from dsmnas.experiments.cli import main
from dsmnas.trainables.methods import run_method

SPACE = NASBenchGraphSpace()
PROTEINS_SPACE = NASBenchGraphProteinsSpace()
ALL_VECTORS = np.array(list(itertools.product(range(9), repeat=5)), dtype=np.int64)
"""Every raw token vector: 9 link patterns x 9^4 operation tuples."""


def package_key(t) -> int:
    """The benchmark's key of a token vector, straight from the package."""
    return Arch(list(link_list[t[0]]), [gnn_list[o] for o in t[1:]]).valid_hash()


def test_registered_with_its_defaults():
    assert (get_space("nasbench-graph").L, get_space("nasbench-graph").C) == (5, 9)
    cfg = EnvConfig(space="nasbench-graph")
    assert (cfg.dataset, cfg.K, cfg.M, cfg.budget_queries, cfg.budget_s) == ("cora", 4, 3, 200, None)
    proteins = EnvConfig(space="nasbench-graph-proteins")
    assert (proteins.dataset, proteins.K, proteins.M, proteins.budget_queries) == ("proteins", 4, 3, 50)
    assert EnvConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="counts its budget in queries: use budget_queries"):
        EnvConfig(space="nasbench-graph", budget_s=100.0).validate(5)
    with pytest.raises(ValueError, match=r"M must be an integer in 1..5"):
        EnvConfig(space="nasbench-graph", M=6).validate(5)


def test_text_round_trip_isomorphic_writings_and_errors():
    t = SPACE.parse("0013-gcn-skip-gat-fc")
    assert t.tolist() == [4, 1, 8, 0, 7] and SPACE.format(t) == "0013-gcn-skip-gat-fc"
    # isomorphic writings parse to one representative; the package's own form where allowed
    assert SPACE.format(SPACE.parse("0123-gcn-gat-skip-fc")) == "0013-gcn-skip-gat-fc"
    assert SPACE.format(SPACE.parse("0000-sage-gcn-fc-gat")) == "0000-gat-gcn-sage-fc"
    assert SPACE.format(SPACE.parse("0000-skip-gcn-gcn-gcn")) == "0000-gcn-gcn-gcn-skip"
    for text, message in (
        ("0013-gcn", "expected a link pattern and four operations"),
        ("0002-gcn-gcn-gcn-gcn", "unknown link pattern 0002; allowed: 0000, 0001, 0011"),
        ("0000-gcn-gcn-gcn-mlp", "unknown operation 'mlp'; allowed: gat, gcn"),
        ("0123-skip-skip-skip-skip", "the all-skip architectures have no entry"),
    ):
        with pytest.raises(ValueError, match=message):
            SPACE.parse(text)
    with pytest.raises(ValueError, match="unknown operation 'gat'; allowed: gcn, sage, arma, fc, skip"):
        PROTEINS_SPACE.parse("0000-gat-gcn-gcn-gcn")
    for tokens in ALL_VECTORS[::97]:  # format <-> parse on canonical vectors
        c = SPACE.canonical(tokens)
        if SPACE.is_valid(c):
            assert (SPACE.parse(SPACE.format(c)) == c).all()


def test_op_mask_links_ops_and_the_no_skip_first_rule():
    mask = SPACE.op_mask()
    assert mask.shape == (5, 9) and mask[0].all()
    for p in range(1, 5):
        assert [gnn_list[o] for o in np.flatnonzero(mask[p])] == (
            [o for o in gnn_list if o != "skip"] if p == 1 else gnn_list)
    pmask = PROTEINS_SPACE.op_mask()
    assert pmask[0].all()
    assert [gnn_list[o] for o in np.flatnonzero(pmask[2])] == ["gcn", "sage", "arma", "fc", "skip"]
    assert sorted(gnn_list[o] for o in np.flatnonzero(pmask[1])) == sorted(
        o for o in gnn_list_proteins if o != "skip")


@pytest.mark.parametrize("space, datasets", [(SPACE, DATASETS), (PROTEINS_SPACE, (PROTEINS,))])
def test_every_vector_the_mask_allows_has_its_entry(space, datasets):
    """Exhaustive over the 9 x 9^4 raw vectors: the key is the package's hash; every vector
    the mask allows is canonicalised to an allowed vector of the same key, which every
    dataset file has; the only raw vectors of the space's operations without an entry are
    the nine all-skip ones."""
    ops = {gnn_list.index(o) for o in space.ops}
    in_ops = np.isin(ALL_VECTORS[:, 1:], list(ops)).all(axis=1)
    valid = np.array([space.is_valid(t) for t in ALL_VECTORS])
    assert valid.sum() == 9 * (len(ops) - 1) * len(ops) ** 3
    assert not (valid & ~in_ops).any()
    keys, canon_keys = {}, set()
    for t in ALL_VECTORS[in_ops]:
        k = space.key(t)
        assert k == package_key(t)
        c = space.canonical(t)
        if (t[1:] == SKIP).all():
            assert not space.is_valid(c)  # no representative: left as it is, invalid
            continue
        assert space.is_valid(c) and space.key(c) == k  # also for skip-first vectors
        assert (space.canonical(c) == c).all()
        if space.is_valid(t):
            keys[vector_code(t)] = k
        canon_keys.add(vector_code(c))
        if space.is_valid(tokens_of_hash(k)):  # the package's own form is the representative
            assert (c == tokens_of_hash(k)).all()
    distinct = set(keys.values())
    assert len(canon_keys) == len(distinct)  # one representative per architecture
    for dataset in datasets:
        file_keys = set(light_read(dataset))
        assert distinct == file_keys  # all of the data, nothing outside it
        data = load_nasbench_graph(dataset)
        assert data.entries == len(file_keys) == (2021 if dataset == PROTEINS else 26206)
        assert np.isfinite(data.val_perf[list(distinct)]).all()


def test_edits_keep_every_result_valid_and_forbidden_edits_change_nothing():
    rng = np.random.default_rng(0)
    for space in (SPACE, PROTEINS_SPACE):
        for _ in range(40):
            alpha = space.sample(rng)
            assert space.is_valid(alpha) and (space.canonical(alpha) == alpha).all()
            for p, o in itertools.product(range(5), range(9)):  # masked pairs included
                beta = space.apply_edits(alpha, [(p, o)])
                assert space.is_valid(beta)
                if not space.op_mask()[p, o]:
                    assert (beta == alpha).all()
            edits = rng.integers(0, [5, 9], size=(3, 2))
            assert space.is_valid(space.apply_edits(alpha, edits))
    # three skips and an edit that would make the fourth one skip: refused by the mask
    alpha = SPACE.parse("0000-gcn-skip-skip-skip")
    assert alpha[1] == gnn_list.index("gcn")
    assert (SPACE.apply_edits(alpha, [(1, SKIP)]) == alpha).all()


def test_queries_are_the_files_values_and_isomorphic_vectors_are_one_key():
    raw = light_read("citeseer")
    bench = make_benchmark(EnvConfig(space="nasbench-graph", dataset="citeseer",
                                     budget_queries=3, cache_queries=True))
    a = SPACE.parse("0000-gat-gcn-sage-fc")
    entry = raw[package_key(a)]
    assert bench.query(a, charge=False).val_acc == pytest.approx(100 * entry["valid_perf"])
    assert bench.report(a) == {"citeseer": pytest.approx(100 * entry["perf"])}
    assert bench.metric("latency_s", a) == pytest.approx(entry["latency"])
    assert bench.metric("params_m", a) == pytest.approx(float(entry["para"]))
    assert bench.clock.queries == 0  # charge=False
    permuted = np.array([a[0], a[3], a[1], a[4], a[2]])  # the same four parallel operations
    assert SPACE.key(permuted) == SPACE.key(a)
    first, again = bench.query(a), bench.query(permuted)
    assert not first.cached and again.cached and again.val_acc == first.val_acc
    assert bench.query(SPACE.parse("0123-gcn-gcn-gcn-gcn")) is not None
    assert bench.query(SPACE.parse("0123-gin-gin-gin-gin")) is not None
    assert bench.query(SPACE.parse("0123-fc-fc-fc-fc")) is None  # 3 charged: the budget
    with pytest.raises(ValueError, match="has no entry in NAS-Bench-Graph citeseer"):
        bench.query(np.array([0, SKIP, SKIP, SKIP, SKIP]))


def test_bad_dataset_is_one_line_before_ray(capsys, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    for argv, message in (
        (["--dataset", "cifar10"], "unknown dataset 'cifar10' for the nasbench-graph space; "
                                   "allowed: cora, citeseer, pubmed, cs, physics, photo, "
                                   "computers, arxiv"),
        (["--dataset", "proteins"], "proteins has five operations of its own: --space "
                                    "nasbench-graph-proteins"),
        (["--budget", "100"], "counts its budget in queries: use budget_queries"),
        (["-K", "1", "--init-from", "0123-gcn-gcn-gcn-xx"], "unknown operation 'xx'"),
    ):
        assert main(["search", "--space", "nasbench-graph", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], err
    assert main(["search", "--space", "nasbench-graph-proteins", "--dataset", "cora"]) == 2
    assert "cora has all nine operations: --space nasbench-graph" in capsys.readouterr().err


def test_env_passes_gymnasiums_checker_and_every_action_is_valid():
    from gymnasium.utils.env_checker import check_env

    check_env(DSMNASEnv(space="nasbench-graph", budget_queries=50, seed=0), skip_render_check=True)
    env = DSMNASEnv(space="nasbench-graph-proteins", budget_queries=10_000, K=2, M=2)
    env.reset(seed=0)
    for p, o in itertools.product(range(5), range(9)):  # masked pairs included
        _, _, _, _, info = env.step(np.array([0, p, o, p, o]))
        assert env.space.is_valid(env.space.parse(info["arch"]))
        assert set(info["arch"].split("-")[1:]) <= set(gnn_list_proteins)


def test_a_small_search_and_random_search_in_both_spaces(ray_session):
    for space, dataset in (("nasbench-graph", "photo"), ("nasbench-graph-proteins", "proteins")):
        data = load_nasbench_graph(dataset)
        cfg = EnvConfig(space=space, dataset=dataset, budget_queries=40, seed=3)
        sp = get_space(space)
        for method in ("dsm", "random"):
            result = run_method(method, cfg)
            h = result.history
            assert result.queries == len(h) == 40
            key = sp.key(sp.parse(result.arch))
            assert result.val_acc == pytest.approx(100 * data.val_perf[key])
            assert result.test_acc == {dataset: pytest.approx(100 * data.test_perf[key])}
            if method == "random":  # the best query is the answer
                assert result.val_acc == h.val_acc.max()
            else:  # the best center: at least as good as every accepted architecture
                assert result.val_acc >= h.loc[h.accepted.astype(bool), "val_acc"].max()
            for arch in h.arch:
                assert sp.is_valid(sp.parse(arch)) and sp.format(sp.parse(arch)) == arch
            again = run_method(method, cfg)
            assert (again.arch, again.val_acc) == (result.arch, result.val_acc)


def test_limits_on_latency_keep_answers_within_them():
    cfg = EnvConfig(space="nasbench-graph", dataset="cora", budget_queries=100, seed=1,
                    limits={"latency_s": 0.002})
    result = run_method("evolution", cfg)
    bench = make_benchmark(cfg)
    assert bench.metric("latency_s", SPACE.parse(result.arch)) <= 0.002
    assert "latency_s" in result.history and (result.history.latency_s > 0.002).any()


def test_compare_two_methods_two_seeds_through_tune(tmp_path, ray_session, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--space", "nasbench-graph", "--dataset", "computers",
               "--methods", "dsm,local", "--seeds", "2", "--budget-queries", "30",
               "--out", str(out)])
    assert rc == 0
    runs = pd.read_csv(out / "runs.csv")
    assert list(zip(runs.method, runs.seed)) == [("dsm", 0), ("dsm", 1), ("local", 0), ("local", 1)]
    assert (runs.status == "ok").all() and (runs.queries == 30).all()
    data = load_nasbench_graph("computers")
    for r in runs.itertuples():
        key = SPACE.key(SPACE.parse(r.arch))
        assert r.val_acc == pytest.approx(100 * data.val_perf[key])
        assert r.test_acc_computers == pytest.approx(100 * data.test_perf[key])
        assert len(pd.read_csv(out / "histories" / f"{r.method}-{r.seed}.csv")) == 30
    md = (out / "summary.md").read_text()
    assert "| method | runs | failed | val | computers |" in md
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    assert summary.loc["local", "n_runs"] == 2
    assert "4 finished, 0 failed" in capsys.readouterr().out
