"""Tests of the DSM-NAS variants (trainables/variants.py) and the module's no-op edit mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsmnas.envs import DSMNASEnv, EnvConfig, dsm_spaces
from dsmnas.envs.registry import get_space
from dsmnas.envs.spaces.nb201 import code
from dsmnas.policies import DSMNASModule
from dsmnas.policies.dsm_module import _noop_masked_logits
from ray.rllib.core.columns import Columns
from ray.rllib.utils.torch_utils import FLOAT_MIN
from dsmnas.trainables.methods import run_method
from dsmnas.trainables.search import LearnerSettings, run_search
from dsmnas.trainables.variants import run_dsm_nonoop

K, L, C, M = 3, 6, 5, 3

# The queried architectures (NB201 ids, `envs.spaces.nb201.code`) of `dsm`, seed 2, 3,000 s
# on the shared table, recorded before `mask_noop_edits` existed (the first 28 rows of that
# seed's 25,000 s run: a smaller budget only ends the same search earlier). Rows 18 and 19
# query the same architecture.
DSM_SEED2_3000S = [
    12721, 224, 13741, 10082, 11402, 1903, 384, 13111, 12715, 12675, 2533, 9435, 12089, 1474,
    196, 845, 11326, 389, 90, 90, 1939, 710, 9417, 3562, 11321, 5681, 5193, 3349,
]


def make_module(seed: int = 0, **model_config) -> DSMNASModule:
    torch.manual_seed(seed)
    obs_space, action_space = dsm_spaces(K, L, C, M)
    return DSMNASModule(
        observation_space=obs_space,
        action_space=action_space,
        model_config=model_config,
    )


def random_obs(batch: int, seed: int, op_mask: torch.Tensor | None = None) -> dict:
    """`batch` different graphs (random centers, accuracies, weak-to-better edges)."""
    rng = np.random.default_rng(seed)
    val_acc = rng.random((batch, K)).astype(np.float32)
    idx = np.arange(K)
    adj = (val_acc[:, :, None] < val_acc[:, None, :]) | (
        (val_acc[:, :, None] == val_acc[:, None, :]) & (idx[:, None] < idx[None, :])
    )
    return {
        "tokens": torch.as_tensor(rng.integers(0, C, size=(batch, K, L))),
        "val_acc": torch.as_tensor(val_acc),
        "adj": torch.as_tensor(adj.astype(np.float32)),
        "op_mask": (torch.ones(L, C) if op_mask is None else op_mask).expand(batch, L, C).clone(),
    }


def edits_and_center_ops(obs: dict, actions: torch.Tensor):
    """Per edit m: (position, op, the chosen center's op at that position), each (B,)."""
    rows = torch.arange(actions.shape[0])
    center = obs["tokens"][rows, actions[:, 0]]  # (B, L)
    for m in range(M):
        position, op = actions[:, 1 + 2 * m], actions[:, 2 + 2 * m]
        yield position, op, center[rows, position]


def sample_and_replay(module: DSMNASModule, obs: dict):
    torch.manual_seed(1)
    out = module.forward_exploration({Columns.OBS: obs})
    train = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: out[Columns.ACTIONS]})
    dist = module.get_train_action_dist_cls().from_logits(train[Columns.ACTION_DIST_INPUTS])
    return out, train, dist


# ----------------------------------------------------------------------- the module's mask
def test_noop_mask_logits_on_hand_made_rows():
    allowed = torch.tensor(
        [[1.0, 1.0, 1.0, 1.0, 1.0],   # all allowed: only the current op (2) goes
         [0.0, 1.0, 0.0, 1.0, 0.0],   # the current op (3) goes, 1 stays
         [0.0, 0.0, 0.0, 0.0, 1.0],   # only the current op (4) allowed: it stays
         [1.0, 1.0, 0.0, 0.0, 0.0]]   # the current op (3) is not allowed anyway
    )
    current = torch.tensor([2, 3, 4, 3])
    got = _noop_masked_logits(allowed, current)
    expected = torch.tensor(
        [[0, 0, 1, 0, 0], [1, 0, 1, 1, 1], [1, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool
    )  # True where masked
    assert bool((got[expected] == FLOAT_MIN).all()) and bool((got[~expected] == 0).all())


def test_sampled_ops_never_equal_the_centers_op_and_replay_is_exact():
    n = 3000
    obs = random_obs(n, seed=0)
    module = make_module(mask_noop_edits=True)
    out, train, dist = sample_and_replay(module, obs)
    actions = out[Columns.ACTIONS]
    logits = torch.split(out[Columns.ACTION_DIST_INPUTS], module.input_lens, dim=-1)
    probs = [t.softmax(-1) for t in logits]
    for m, (position, op, center_op) in enumerate(edits_and_center_ops(obs, actions)):
        assert not bool((op == center_op).any())
        assert float(probs[2 + 2 * m].gather(1, center_op[:, None]).max()) < 1e-30
        # Only that op is masked: the four others all get sampled, at every position.
        for p in range(L):
            for c in range(C):
                chosen = op[(position == p) & (center_op == c)]
                assert set(chosen.tolist()) == set(range(C)) - {c}, (m, p, c)
    # So beta != alpha in every row, though a position may be edited twice.
    rows = torch.arange(n)
    center = obs["tokens"][rows, actions[:, 0]]
    beta = center.clone()
    for m in range(M):
        beta[rows, actions[:, 1 + 2 * m]] = actions[:, 2 + 2 * m]
    assert bool((beta != center).any(dim=-1).all())
    # Teacher forcing rebuilds exactly the masked logits that were sampled from (logp to
    # 1e-6: see the next test; at this batch size the two sums of 1 + 2M terms may round
    # apart by 2 float32 ulps of |logp| ~ 11, with or without the mask).
    assert torch.equal(train[Columns.ACTION_DIST_INPUTS], out[Columns.ACTION_DIST_INPUTS])
    torch.testing.assert_close(dist.logp(actions), out[Columns.ACTION_LOGP], atol=1e-5, rtol=0)
    assert torch.isfinite(dist.entropy()).all()

    # The default module (the paper's) does pick the center's op: ~1 edit in 5.
    default_out = make_module().forward_exploration({Columns.OBS: obs})
    noops = [
        float((op == center_op).float().mean())
        for _, op, center_op in edits_and_center_ops(obs, default_out[Columns.ACTIONS])
    ]
    assert all(0.1 < x < 0.3 for x in noops), noops


@pytest.mark.parametrize("batch", [1, 16])
def test_replayed_logp_equals_sampled_logp_with_the_mask(batch):
    module = make_module(mask_noop_edits=True)
    for seed in range(5):
        obs = random_obs(batch, seed=10 + seed)
        out, train, dist = sample_and_replay(module, obs)
        torch.testing.assert_close(
            dist.logp(out[Columns.ACTIONS]), out[Columns.ACTION_LOGP], atol=1e-6, rtol=0
        )


def test_a_position_that_allows_only_the_centers_op_keeps_it():
    """MobileNet-like masks: a position may allow a single op; masking it would leave none."""
    n = 2000
    mask = torch.ones(L, C)
    mask[1] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])  # only op 3, which the centers have
    mask[4] = 0.0  # allows nothing: never chosen
    obs = random_obs(n, seed=1, op_mask=mask)
    obs["tokens"][:, :, 1] = 3
    module = make_module(mask_noop_edits=True)
    out, _, dist = sample_and_replay(module, obs)
    actions = out[Columns.ACTIONS]
    seen_position_1 = False
    for position, op, center_op in edits_and_center_ops(obs, actions):
        assert not bool((position == 4).any())
        assert bool((mask[position, op] == 1).all())
        at_1 = position == 1
        seen_position_1 |= bool(at_1.any())
        assert bool((op[at_1] == 3).all())  # the only choice there, kept
        assert not bool((op[~at_1] == center_op[~at_1]).any())  # elsewhere no no-ops
    assert seen_position_1
    assert torch.isfinite(out[Columns.ACTION_LOGP]).all()
    torch.testing.assert_close(dist.logp(actions), out[Columns.ACTION_LOGP], atol=1e-5, rtol=0)
    small = {k: v[:16] for k, v in obs.items()}
    out, _, dist = sample_and_replay(module, small)
    torch.testing.assert_close(
        dist.logp(out[Columns.ACTIONS]), out[Columns.ACTION_LOGP], atol=1e-6, rtol=0
    )


def test_mask_noop_edits_must_be_a_bool_and_dsm_nonoop_rejects_turning_it_off():
    with pytest.raises(ValueError, match="mask_noop_edits must be a bool, got 1"):
        make_module(mask_noop_edits=1)
    with pytest.raises(ValueError, match="for mask_noop_edits=false use dsm"):
        run_dsm_nonoop(EnvConfig(), {"mask_noop_edits": False})
    with pytest.raises(ValueError, match=r"unknown dsm-nonoop setting\(s\) \['gamma'\]"):
        run_dsm_nonoop(EnvConfig(), {"gamma": 0.0})


# ----------------------------------------------------------------------- whole searches
@pytest.fixture(scope="module")
def dsm_seed2_cfg(nb201_data):
    return EnvConfig(table=nb201_data.table, budget_s=nb201_data.budget_s(3000), seed=2)


@pytest.fixture(scope="module")
def oneway_seed2(dsm_seed2_cfg, ray_session):
    # The recorded ids and the cache comparison below were made with one-way message
    # passing, dsm's only passing before the two-way default.
    return run_method("dsm-oneway", dsm_seed2_cfg)


def test_dsm_is_unchanged_by_default(dsm_seed2_cfg, ray_session):
    dsm = run_method("dsm", dsm_seed2_cfg)
    assert len(dsm.history) > 20
    assert dsm.config["learner"]["mask_noop_edits"] is False
    assert dsm.config["learner"]["message_passing"] == "two-way"
    assert dsm.config["cache_queries"] is False
    defaults = run_search(dsm_seed2_cfg, LearnerSettings(), progress=None)
    assert defaults.history.equals(dsm.history)


def test_dsm_oneway_queries_what_dsm_queried_before_the_variants(nb201_table, dsm_seed2_cfg,
                                                                 oneway_seed2):
    assert dsm_seed2_cfg.table == nb201_table  # the recorded ids are the shared table's
    space = get_space("nb201")
    assert [code(space.parse(a)) for a in oneway_seed2.history.arch] == DSM_SEED2_3000S


def test_dsm_nonoop_never_queries_its_center(nb201_data, ray_session):
    budget_s = nb201_data.budget_s(5000)
    cfg = EnvConfig(table=nb201_data.table, budget_s=budget_s, seed=2)
    result = run_method("dsm-nonoop", cfg)
    history = result.history
    assert result.config["learner"]["mask_noop_edits"] is True
    assert result.config["method"] == "dsm-nonoop"
    assert len(history) == result.queries >= 30 and result.sim_time_s <= budget_s
    assert result.sim_time_s == pytest.approx(history.cost_s.sum())
    # Follow each subspace's center from the env's initial graph (same seed, same reset):
    # every query must differ from the center it was edited from.
    env = DSMNASEnv(cfg.to_dict())
    env.reset()
    centers = [env.space.format(c) for c in env.graph.centers]
    center_val = list(env.graph.val_acc)
    for row in history.itertuples():
        # The reward is val(beta) - val(center): this checks the reconstruction.
        assert row.val_acc - row.reward == pytest.approx(center_val[row.subspace])
        assert row.arch != centers[row.subspace]
        if row.accepted:
            centers[row.subspace], center_val[row.subspace] = row.arch, row.val_acc
    assert result.arch in centers and result.val_acc == max(center_val)


def test_dsm_cache_makes_repeats_free_and_otherwise_searches_as_dsm(dsm_seed2_cfg, oneway_seed2):
    result = run_method("dsm-cache", dsm_seed2_cfg, {"message_passing": "one-way"})
    history = result.history
    assert result.config["cache_queries"] is True and result.config["env"]["cache_queries"]
    repeats = history.arch.duplicated()
    assert repeats.sum() >= 1
    assert (history.cost_s[repeats] == 0).all() and (history.cost_s[~repeats] > 0).all()
    assert result.sim_time_s == pytest.approx(history.cost_s.sum()) and result.sim_time_s <= dsm_seed2_cfg.budget_s
    # Only the clock differs from dsm: the same seed makes the same queries, and the ones
    # the cache saved buy more.
    n = len(oneway_seed2.history)
    assert len(history) > n
    assert history.iloc[:n].drop(columns=["cost_s", "sim_time_s"]).equals(
        oneway_seed2.history.drop(columns=["cost_s", "sim_time_s"])
    )


def test_dsm_tuned_runs_the_spaces_tuned_settings_and_refuses_what_it_sets():
    from dsmnas.envs.errors import ConfigError
    from dsmnas.trainables.methods import check_method
    from dsmnas.trainables.variants import prepare

    env, learner = prepare("dsm-tuned", EnvConfig(space="nb201", seed=0), {})
    tuned = EnvConfig(space="nb201").spec.tuned
    assert (env.K, env.M, learner.entropy, learner.lr) == (
        tuned["K"], tuned["M"], tuned["entropy"], tuned["lr"])
    assert (env.K, env.M) != (EnvConfig(space="nb201").K, EnvConfig(space="nb201").M)
    menv, mlearner = prepare("dsm-tuned", EnvConfig(space="mobilenet", seed=0), {})
    assert (menv.M, mlearner.lr) == (2, 1e-3)  # not nb201's, not the paper's 3 / 3e-4
    with pytest.raises(ConfigError, match="dsm-tuned sets entropy, lr itself"):
        check_method("dsm-tuned", EnvConfig(space="nb201"), {"lr": 0.1, "entropy": 0.0})
    with pytest.raises(ConfigError, match="the fcnet space has no tuned settings"):
        check_method("dsm-tuned", EnvConfig(space="fcnet"), {})
