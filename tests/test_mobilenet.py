"""The MobileNet-like (OFA) space, the OFA predictor benchmark and the MACs rule."""

from __future__ import annotations

import ast
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from dsmnas.envs import DSMNASEnv, EnvConfig, history_frame
from dsmnas.envs.benchmarks import make_benchmark
from dsmnas.envs.registry import get_space
from dsmnas.envs.spaces.mobilenet import OPS, MobileNetSpace, macs_m, token_of
from tests.conftest import SHARED

SPACE = MobileNetSpace()


def test_registered_with_the_papers_sizes():
    space = get_space("mobilenet")
    assert (space.L, space.C) == (20, 10)
    assert OPS[0] == "absent" and OPS[1] == "k3e3" and OPS[4] == "k5e3" and OPS[9] == "k7e6"
    assert [token_of(k, e) for k, e in [(3, 3), (3, 4), (3, 6), (5, 3), (7, 6)]] == [1, 2, 3, 4, 9]


def test_text_round_trip_and_errors():
    t = SPACE.parse("5973-4400-1230-9999-5500")
    assert SPACE.format(t) == "5973-4400-1230-9999-5500"
    assert (SPACE.parse("59734400123099995500") == t).all()
    with pytest.raises(ValueError, match="expected 20 digits"):
        SPACE.parse("5973-4400")
    with pytest.raises(ValueError, match="invalid mobilenet architecture"):
        SPACE.parse("5000-4400-1230-9999-5500")  # unit depth 1


def test_op_mask_forbids_absent_first_two_layers_of_each_unit():
    mask = SPACE.op_mask()
    for p in range(20):
        assert mask[p, 0] == (0.0 if p % 4 < 2 else 1.0)
        assert mask[p, 1:].all()


def test_canonical_moves_absent_layers_to_the_end_of_their_unit():
    t = np.array([5, 9, 0, 3] + [4, 4, 0, 0] + [1, 2, 3, 0] + [9] * 4 + [5, 5, 0, 7])
    assert SPACE.format(SPACE.canonical(t)) == "5930-4400-1230-9999-5570"
    # an edit that removes a middle layer shifts the later ones up
    beta = SPACE.apply_edits(SPACE.parse("1234-5678-9123-4567-8912"), [(1 * 4 + 2, 0)])
    assert SPACE.format(beta) == "1234-5680-9123-4567-8912"
    # an edit the op mask forbids leaves its position unchanged
    alpha = SPACE.parse("1234-5678-9123-4567-8912")
    assert (SPACE.apply_edits(alpha, [(0, 0), (5, 0)]) == alpha).all()


def test_random_samples_are_canonical_with_ofa_depths():
    rng = np.random.default_rng(0)
    depths = []
    for _ in range(300):
        t = SPACE.sample(rng)
        assert SPACE.is_valid(t) and (SPACE.canonical(t) == t).all()
        depths += SPACE.depths(t)
    counts = np.bincount(depths, minlength=5)[2:]
    assert counts.min() > 0.25 * len(depths)  # depth uniform over {2, 3, 4}


def test_ofa_dict_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(100):
        t = SPACE.sample(rng)
        arch = SPACE.to_ofa(t)
        assert len(arch["ks"]) == 20 and len(arch["e"]) == 20 and arch["d"] == SPACE.depths(t)
        assert (SPACE.from_ofa(arch) == t).all()
    with pytest.raises(ValueError, match="unit 0 depth 1 is not allowed"):
        SPACE.from_ofa({"ks": [3] * 20, "e": [3] * 20, "d": [1, 2, 2, 2, 2]})
    with pytest.raises(ValueError, match=r"\(kernel 4, expand 3\) is not in the space"):
        SPACE.from_ofa({"ks": [4] * 20, "e": [3] * 20, "d": [2] * 5})


def test_net_config_files(ofa_specialized):
    t = SPACE.from_net_config(ofa_specialized / "flops-595M_top1-80.0_finetune-75")
    config = json.loads((ofa_specialized / "flops-595M_top1-80.0_finetune-75/net.config").read_text())
    layers = [b["mobile_inverted_conv"] for b in config["blocks"][1:]]
    assert np.count_nonzero(t) == len(layers)
    present = [int(x) for x in t if x]
    assert present == [token_of(c["kernel_size"], c["expand_ratio"]) for c in layers]
    mobilenets = [d for d in ofa_specialized.iterdir()
                  if json.loads((d / "net.config").read_text())["name"] == "MobileNetV3"]
    assert len(mobilenets) == 34
    for d in mobilenets:
        assert SPACE.is_valid(SPACE.from_net_config(d))
    with pytest.raises(ValueError, match="'ProxylessNASNets' net.config is not in the MobileNet-like space"):
        SPACE.parse_any(str(ofa_specialized / "cpu_lat-10ms_top1-71.1_finetune-25"))


def test_macs_equal_ofas_profiler_on_a_few_subnets():
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    from ofa.utils import count_net_flops

    net = OFAMobileNetV3(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4],
                         width_mult=1.2)
    rng = np.random.default_rng(2)
    for resolution in (224, 160):
        arch = SPACE.to_ofa(SPACE.sample(rng))
        net.set_active_subnet(**arch)
        profiled = count_net_flops(net.get_active_subnet(), (1, 3, resolution, resolution)) / 1e6
        # exact at 224; at 160 the two count a few MACs apart (under 1e-7 relative)
        assert macs_m(arch, resolution, 1.2) == pytest.approx(profiled, rel=1e-6)
    with pytest.raises(ValueError, match="width_mult must be 1.0 or 1.2"):
        macs_m(arch, 224, 1.5)


def test_macs_equal_the_measured_w10_subnets_counts():
    path = SHARED / "data/ofa-dynast/mbnv3w10_evoga_acc.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    rows = pd.read_csv(path).head(5)
    for config, macs in zip(rows["Sub-network"], rows["MACs"]):
        arch = ast.literal_eval(config)
        assert macs_m(arch, arch["r"][0], 1.0) == pytest.approx(macs / 1e6, abs=1e-6)


# -- the predictor benchmark ----------------------------------------------------------------
def test_predictor_benchmark_scores_and_budget(ofa_predictor):
    bench = make_benchmark(EnvConfig(space="mobilenet", predictor=ofa_predictor, budget_queries=3))
    largest = SPACE.parse("9999-9999-9999-9999-9999")
    smallest = SPACE.parse("1100-1100-1100-1100-1100")
    # the released predictor's values (the shared README): 0.836 largest, 0.777 smallest
    assert bench.query(largest, charge=False).val_acc == pytest.approx(83.6, abs=0.05)
    assert bench.query(smallest, charge=False).val_acc == pytest.approx(77.7, abs=0.05)
    assert bench.macs_m(largest) > 600 and not bench.feasible(largest)
    assert bench.feasible(smallest)
    assert [bench.query(smallest) is not None for _ in range(4)] == [True, True, True, False]
    assert bench.report(smallest) == {}  # no test accuracy: the predictor is the only number


def test_predictor_errors(tmp_path, ofa_predictor):
    with pytest.raises(FileNotFoundError, match="pass --predictor PATH"):
        make_benchmark(EnvConfig(space="mobilenet", predictor=str(tmp_path / "nope.pth")))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="is not OFA's acc_predictor.pth"):
        make_benchmark(EnvConfig(space="mobilenet", predictor=str(bad)))
    with pytest.raises(ValueError, match="encodes resolutions"):
        make_benchmark(EnvConfig(space="mobilenet", predictor=ofa_predictor, resolution=100))
    with pytest.raises(ValueError, match="counts its budget in queries"):
        make_benchmark(EnvConfig(space="mobilenet", predictor=ofa_predictor, budget_s=10.0))
    with pytest.raises(ValueError, match="unknown evaluator 'oracle'"):
        EnvConfig(space="mobilenet", evaluator="oracle").validate(20)
    with pytest.raises(ValueError, match=r"unknown environment setting\(s\) \['max_macs_m'\] "
                                         r"for space 'nb201'"):
        EnvConfig(max_macs_m=100.0)


def test_space_defaults_are_the_papers():
    cfg = EnvConfig(space="mobilenet")
    assert (cfg.K, cfg.M, cfg.budget_queries, cfg.max_macs_m, cfg.evaluator) == (
        10, 3, 10_000, 600.0, "predictor")
    assert cfg.dataset == "imagenet"
    assert (EnvConfig().K, EnvConfig().M, EnvConfig().dataset) == (4, 4, "cifar10")
    assert EnvConfig.from_dict(cfg.to_dict()) == cfg


# -- the environment ---------------------------------------------------------------------------
def test_env_passes_gymnasiums_checker(ofa_predictor):
    from gymnasium.utils.env_checker import check_env

    env = DSMNASEnv(space="mobilenet", predictor=ofa_predictor, budget_queries=50, seed=0)
    check_env(env, skip_render_check=True)


def test_env_never_accepts_a_center_over_the_macs_limit(ofa_predictor):
    # a tight limit, so that many proposals are over it
    env = DSMNASEnv(space="mobilenet", predictor=ofa_predictor, budget_queries=600, seed=3,
                    max_macs_m=400.0)
    _, info = env.reset()
    bench = env.benchmark
    assert all(bench.macs_m(c) <= 400 for c in env.graph.centers)
    rejected_over = 0
    done = False
    while not done:
        _, reward, done, _, info = env.step(env.action_space.sample())
        assert all(bench.macs_m(c) <= 400 for c in env.graph.centers)
    history = history_frame(env.last_finished[1], env.benchmark.history_metrics)
    over = history[history.macs_m > 400]
    rejected_over = int((over.reward > 0).sum())
    assert len(over) > 50 and rejected_over > 0  # better but too big: rejected
    assert not over.accepted.any()
    assert history.accepted.any()


def test_init_centers_from_net_configs_and_over_the_limit(ofa_predictor, ofa_specialized):
    names = ["flops-389M_top1-79.1_finetune-75", "flops-595M_top1-80.0_finetune-75"]
    paths = [str(ofa_specialized / n) for n in names]
    env = DSMNASEnv(space="mobilenet", predictor=ofa_predictor, budget_queries=5, K=2,
                    init_centers=paths)
    env.reset(seed=0)
    assert [env.space.format(c) for c in env.graph.centers] == [
        env.space.format(env.space.from_net_config(p)) for p in paths]
    with pytest.raises(ValueError, match=r"exceed the limit \(macs_m <= 300 \(million MACs at 224x224"):
        DSMNASEnv(space="mobilenet", predictor=ofa_predictor, K=1, max_macs_m=300.0,
                  init_centers=[paths[1]])


def test_every_action_gives_a_valid_architecture(ofa_predictor):
    env = DSMNASEnv(space="mobilenet", predictor=ofa_predictor, budget_queries=10_000, K=2, M=2)
    env.reset(seed=0)
    # every (position, op) pair, masked ones included
    for p, o in itertools.product(range(20), range(10)):
        _, _, _, _, info = env.step(np.array([0, p, o, p, o]))
        assert env.space.is_valid(env.space.parse(info["arch"]))


def test_over_limit_penalty_makes_no_query(ofa_predictor):
    """dsm-macs' rule: a proposal over the limit is not queried and is penalised."""
    env = DSMNASEnv(space="mobilenet", predictor=ofa_predictor, budget_queries=5, K=1, M=1,
                    max_macs_m=400.0, over_limit="penalty", init_centers=["6500-9700-1100-2599-1500"])
    env.reset(seed=0)
    bench = env.benchmark
    # 391M MACs; k7e6 as the first layer of the last unit makes it 408M
    over = 16
    beta = env.space.apply_edits(env.graph.centers[0], [(over, 9)])
    assert bench.macs_m(env.graph.centers[0]) < 400 < bench.macs_m(beta)
    _, reward, terminated, truncated, info = env.step(np.array([0, over, 9]))
    assert not info["queried"] and env.benchmark.clock.queries == 0
    assert reward == pytest.approx(-100 * (bench.macs_m(beta) / 400 - 1))
    assert not terminated and not truncated and env.skipped_over_limit == 1
    # the episode is truncated after MAX_STEPS_PER_QUERY steps per query of the budget
    steps = 1
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.array([0, over, 9]))
        steps += 1
    assert steps == DSMNASEnv.MAX_STEPS_PER_QUERY * 5 and env.episodes_finished == 1
    with pytest.raises(ValueError, match="unknown over_limit 'skip'"):
        EnvConfig(space="mobilenet", over_limit="skip").validate(20)


@pytest.mark.parametrize("over_limit", ["query", "penalty"])
def test_env_state_round_trip_in_this_space(ofa_predictor, over_limit):
    """A checkpointed mobilenet env (MACs column, skipped steps) continues like the original."""
    import pickle

    cfg = dict(space="mobilenet", predictor=ofa_predictor, budget_queries=60, seed=1, K=3,
               max_macs_m=450.0, over_limit=over_limit)
    env = DSMNASEnv(**cfg)
    env.reset()
    rng = np.random.default_rng(0)
    actions = [rng.integers(env.action_space.nvec) for _ in range(200)]
    for a in actions[:20]:
        env.step(a)
    twin = DSMNASEnv(**cfg)
    twin.reset(seed=9)
    twin.set_state(pickle.loads(pickle.dumps(env.get_state())))
    for a in actions[20:]:
        ra, rb = env.step(a), twin.step(a)
        assert ra[1:] == rb[1:] and all(np.array_equal(ra[0][k], rb[0][k]) for k in ra[0])
        if ra[2] or ra[3]:
            break
    assert env.history == twin.history and list(env.history[0].row()) == list(env.history_columns)
    assert (env.steps, env.skipped_over_limit) == (twin.steps, twin.skipped_over_limit)
    if over_limit == "penalty":
        assert env.skipped_over_limit > 0


def test_the_600m_limit_binds_on_the_w12_supernet_and_never_on_w10():
    """Why `train-supernet` defaults to the paper's w1.2: on w1.0 no subnet reaches 600M MACs
    at 224, so a supernet search's limit would never bind."""
    largest = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}
    smallest = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}
    assert macs_m(largest, 224, 1.0) < 600 < macs_m(largest, 224, 1.2)
    assert macs_m(smallest, 224, 1.2) < 600
    from dsmnas.trainables.supernet_settings import SupernetTrainSettings

    assert SupernetTrainSettings().width_mult == 1.2
