"""Tests of the DSM-NAS controller RLModule (policies/)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch_geometric.nn import MessagePassing

from dsmnas.envs import dsm_spaces
from dsmnas.policies import DSMModuleConfig, DSMNASModule, SubspaceGraphEncoder
from ray.rllib.core.columns import Columns

K, L, C, M = 3, 6, 5, 2


def make_spaces(k: int = K, l: int = L, c: int = C, m: int = M):
    return dsm_spaces(k, l, c, m)


def weak_to_better_adj(val_acc: np.ndarray) -> np.ndarray:
    """adj[i, j] = 1 iff val[i] < val[j], or equal and i < j."""
    k = len(val_acc)
    adj = np.zeros((k, k), dtype=np.float32)
    for i in range(k):
        for j in range(k):
            if i != j and (val_acc[i] < val_acc[j] or (val_acc[i] == val_acc[j] and i < j)):
                adj[i, j] = 1.0
    return adj


def random_obs(batch: int, seed: int = 0, k: int = K, l: int = L, c: int = C) -> dict:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, c, size=(batch, k, l))
    val_acc = rng.random((batch, k)).astype(np.float32)
    adj = np.stack([weak_to_better_adj(v) for v in val_acc])
    return {
        "tokens": torch.as_tensor(tokens, dtype=torch.int64),
        "val_acc": torch.as_tensor(val_acc),
        "adj": torch.as_tensor(adj),
        "op_mask": torch.ones(batch, l, c),
    }


def make_module(seed: int = 0, **model_config) -> DSMNASModule:
    torch.manual_seed(seed)
    obs_space, act_space = make_spaces()
    return DSMNASModule(
        observation_space=obs_space, action_space=act_space, model_config=model_config
    )


def decision_probs(module: DSMNASModule, dist_inputs: torch.Tensor) -> list[torch.Tensor]:
    return [t.softmax(-1) for t in torch.split(dist_inputs, module.input_lens, dim=-1)]


# ----------------------------------------------------------------------- logp replay
@pytest.mark.parametrize("use_graph", [True, False])
@pytest.mark.parametrize("batch", [1, 16])
def test_replayed_logp_equals_sampled_logp(batch, use_graph):
    module = make_module(use_graph=use_graph)
    obs = random_obs(batch, seed=batch)
    torch.manual_seed(1)
    out = module.forward_exploration({Columns.OBS: obs})
    actions = out[Columns.ACTIONS]
    assert actions.dtype == torch.int64 and actions.shape == (batch, 1 + 2 * M)
    assert out[Columns.ACTION_DIST_INPUTS].shape == (batch, K + M * (L + C))
    assert bool(module.action_space.contains(actions[0].numpy()))

    train = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: actions})
    dist = module.get_train_action_dist_cls().from_logits(train[Columns.ACTION_DIST_INPUTS])
    torch.testing.assert_close(
        dist.logp(actions), out[Columns.ACTION_LOGP], atol=1e-6, rtol=0
    )
    # Teacher forcing rebuilds exactly the logits that were sampled from.
    torch.testing.assert_close(
        train[Columns.ACTION_DIST_INPUTS], out[Columns.ACTION_DIST_INPUTS], atol=1e-6, rtol=0
    )
    # Entropy is the sum of the 1 + 2M per-decision entropies.
    per_decision = [
        -(p * p.log()).sum(-1) for p in decision_probs(module, train[Columns.ACTION_DIST_INPUTS])
    ]
    torch.testing.assert_close(dist.entropy(), torch.stack(per_decision, -1).sum(-1))


@pytest.mark.parametrize("k, l, c, m", [(1, 6, 5, 1), (10, 20, 10, 3)])
def test_other_sizes_single_center_and_mobilenet_like(k, l, c, m):
    """K=1 has no edges at all; K=10, L=20, C=10, M=3 is the paper's MobileNet setting."""
    torch.manual_seed(0)
    obs_space, act_space = make_spaces(k, l, c, m)
    module = DSMNASModule(observation_space=obs_space, action_space=act_space, model_config={})
    sizes = (module.num_nodes, module.num_positions, module.num_ops, module.num_edits)
    assert sizes == (k, l, c, m)
    obs = random_obs(8, seed=14, k=k, l=l, c=c)
    out = module.forward_exploration({Columns.OBS: obs})
    assert out[Columns.ACTION_DIST_INPUTS].shape == (8, k + m * (l + c))
    train = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: out[Columns.ACTIONS]})
    dist = module.get_train_action_dist_cls().from_logits(train[Columns.ACTION_DIST_INPUTS])
    torch.testing.assert_close(
        dist.logp(out[Columns.ACTIONS]), out[Columns.ACTION_LOGP], atol=1e-6, rtol=0
    )


def test_rows_sampled_one_by_one_replay_in_one_batch():
    """What PPO does: sample at B=1, train on the stacked rows."""
    module = make_module()
    obs = random_obs(16, seed=3)
    rows = [
        module.forward_exploration({Columns.OBS: {k: v[i : i + 1] for k, v in obs.items()}})
        for i in range(16)
    ]
    actions = torch.cat([r[Columns.ACTIONS] for r in rows])
    logp = torch.cat([r[Columns.ACTION_LOGP] for r in rows])
    train = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: actions})
    dist = module.get_train_action_dist_cls().from_logits(train[Columns.ACTION_DIST_INPUTS])
    # Different matmul shapes round differently: allow a few float32 ulps of |logp| ~ 10.
    torch.testing.assert_close(dist.logp(actions), logp, atol=1e-5, rtol=0)


def test_inference_is_greedy_and_deterministic():
    module = make_module()
    obs = random_obs(8, seed=4)
    first = module.forward_inference({Columns.OBS: obs})
    second = module.forward_inference({Columns.OBS: obs})
    assert torch.equal(first[Columns.ACTIONS], second[Columns.ACTIONS])
    per_decision = torch.split(first[Columns.ACTION_DIST_INPUTS], module.input_lens, dim=-1)
    argmaxes = torch.stack([t.argmax(-1) for t in per_decision], dim=-1)
    assert torch.equal(first[Columns.ACTIONS], argmaxes)


# ----------------------------------------------------------------------- masks
def test_op_mask_is_respected():
    module = make_module()
    n = 2000
    obs = random_obs(1, seed=5)
    obs = {k: v.expand(n, *v.shape[1:]).clone() for k, v in obs.items()}
    mask = torch.ones(L, C)
    mask[:, 3] = 0.0  # op 3 forbidden everywhere
    mask[1] = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0])  # position 1 allows only op 1
    mask[4] = 0.0  # position 4 allows nothing: it must never be chosen
    obs["op_mask"] = mask.expand(n, L, C).clone()

    torch.manual_seed(2)
    out = module.forward_exploration({Columns.OBS: obs})
    actions = out[Columns.ACTIONS]
    probs = decision_probs(module, out[Columns.ACTION_DIST_INPUTS])
    for m in range(M):
        position, op = actions[:, 1 + 2 * m], actions[:, 2 + 2 * m]
        assert bool((mask[position, op] == 1).all())
        assert not bool((position == 4).any())
        assert bool((op[position == 1] == 1).all())
        position_probs, op_probs = probs[1 + 2 * m], probs[2 + 2 * m]
        assert float(position_probs[:, 4].max()) < 1e-30
        forbidden = mask[position] == 0  # (n, C), per row the mask of its chosen position
        assert float(op_probs[forbidden].max()) < 1e-30
        # Every allowed op of an unconstrained position does get sampled.
        free = (position != 1)
        assert set(op[free].tolist()) == {0, 1, 2, 4}
    assert torch.isfinite(out[Columns.ACTION_LOGP]).all()


# ----------------------------------------------------------------------- gradients
def test_gradients_reach_gnn_and_token_embeddings():
    module = make_module()
    obs = random_obs(4, seed=6)
    actions = module.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS]
    train = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: actions})
    dist = module.get_train_action_dist_cls().from_logits(train[Columns.ACTION_DIST_INPUTS])
    dist.logp(actions).sum().backward()
    for name, param in module.named_parameters():
        if name.startswith("value_head"):
            assert param.grad is None, name  # logp alone does not touch the critic
            continue
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert any(n.startswith("pi.encoder.gnn.") for n, _ in module.named_parameters())
    assert module.pi.encoder.token_embedding.weight.grad.abs().sum() > 0


def test_no_graph_variant_has_no_gnn_and_ignores_edges():
    with_graph, without = make_module(message_passing="one-way"), make_module(use_graph=False)
    assert any(isinstance(m, MessagePassing) for m in with_graph.modules())
    assert not any(isinstance(m, MessagePassing) for m in without.modules())
    assert not any("gnn" in n for n, _ in without.named_parameters())

    obs = random_obs(4, seed=7)
    flipped = dict(obs, adj=obs["adj"].transpose(1, 2).contiguous())
    actions = without.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS]

    def logits(module, o):
        return module.forward_train({Columns.OBS: o, Columns.ACTIONS: actions})[
            Columns.ACTION_DIST_INPUTS
        ]

    # Without message passing the adjacency cannot matter; with one-way passing, it does;
    # two-way passing takes every pair both ways, so only the accuracies say which is better
    assert torch.equal(logits(without, obs), logits(without, flipped))
    assert not torch.allclose(logits(with_graph, obs), logits(with_graph, flipped))
    two_way = make_module()
    assert torch.equal(logits(two_way, obs), logits(two_way, flipped))


def test_two_way_passing_lets_the_weakest_center_hear_the_others():
    """Two-way (the official aggregation, dsm's default): every node takes its K - 1 incident
    edges. One-way (dsm-oneway): the weakest center hears from nobody."""
    from dsmnas.policies.gnn import all_pairs

    edges, reverse = all_pairs(2, 4)
    assert edges.shape == (2, 2 * 4 * 3)
    assert torch.equal(edges[:, reverse], edges.flip(0))
    assert torch.bincount(edges[1], minlength=8).tolist() == [3] * 8
    obs = random_obs(1, seed=3, k=4)
    weakest = int(obs["val_acc"][0].argmin())
    others = dict(obs, tokens=obs["tokens"].clone())
    for i in range(4):
        if i != weakest:
            others["tokens"][0, i] = (others["tokens"][0, i] + 1) % C
    for passing, hears in (("two-way", True), ("one-way", False)):
        torch.manual_seed(0)
        encoder = SubspaceGraphEncoder(L, C, 32, 8, True, message_passing=passing)
        before = encoder(obs["tokens"], obs["val_acc"], obs["adj"])[0][0, weakest]
        after = encoder(others["tokens"], others["val_acc"], others["adj"])[0][0, weakest]
        assert (not torch.equal(before, after)) == hears, passing
    with pytest.raises(ValueError, match="unknown message_passing 'both'"):
        SubspaceGraphEncoder(L, C, 32, 8, True, message_passing="both")


@pytest.mark.parametrize("passing", ["two-way", "one-way"])
def test_encoder_is_permutation_equivariant(passing):
    torch.manual_seed(0)
    encoder = SubspaceGraphEncoder(L, C, hidden_size=32, token_dim=8, use_graph=True,
                                   message_passing=passing)
    obs = random_obs(2, seed=8)
    perm = torch.tensor([2, 0, 1])
    nodes, graph = encoder(obs["tokens"], obs["val_acc"], obs["adj"])
    nodes_p, graph_p = encoder(
        obs["tokens"][:, perm], obs["val_acc"][:, perm], obs["adj"][:, perm][:, :, perm]
    )
    torch.testing.assert_close(nodes_p, nodes[:, perm])
    torch.testing.assert_close(graph_p, graph)


# ----------------------------------------------------------------------- values, state
def test_compute_values_shape_and_embeddings_reuse():
    module = make_module()
    obs = random_obs(5, seed=9)
    values = module.compute_values({Columns.OBS: obs})
    assert values.shape == (5,)
    actions = module.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS]
    train = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: actions})
    torch.testing.assert_close(
        module.compute_values({Columns.OBS: obs}, embeddings=train[Columns.EMBEDDINGS]), values
    )


def test_state_round_trip_gives_identical_outputs():
    source, target = make_module(seed=0), make_module(seed=1)
    obs = random_obs(6, seed=10)
    target.set_state(source.get_state())
    outputs = []
    for module in (source, target):
        torch.manual_seed(123)
        out = module.forward_exploration({Columns.OBS: obs})
        outputs.append((out, module.compute_values({Columns.OBS: obs})))
    (a, va), (b, vb) = outputs
    for key in (Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS):
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(va, vb)


def test_target_network_replays_like_the_policy():
    module = make_module()
    module.make_target_networks()
    (main, target), = module.get_target_network_pairs()
    assert main is module.pi and not any(p.requires_grad for p in target.parameters())
    obs = random_obs(4, seed=13)
    actions = module.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS]
    batch = {Columns.OBS: obs, Columns.ACTIONS: actions}
    from ray.rllib.core.rl_module.apis import TARGET_NETWORK_ACTION_DIST_INPUTS

    torch.testing.assert_close(
        module.forward_target(batch)[TARGET_NETWORK_ACTION_DIST_INPUTS],
        module.forward_train(batch)[Columns.ACTION_DIST_INPUTS],
    )


# ----------------------------------------------------------------------- config
def test_unknown_model_config_key_raises():
    with pytest.raises(ValueError, match=r"hidden_sise.*hidden_size"):
        make_module(hidden_sise=32)
    with pytest.raises(ValueError, match="edit_logit_scale"):
        make_module(edit_logit_scale=-1.0)
    # RLlib's PPO/APPO configs add this key to every model_config.
    assert make_module(vf_share_layers=False, hidden_size=16).dsm_config.hidden_size == 16
    assert DSMModuleConfig.from_dict({}) == DSMModuleConfig()


def test_logit_scales_bound_the_logits():
    module = make_module(node_logit_scale=1.5, edit_logit_scale=0.6)
    out = module.forward_exploration({Columns.OBS: random_obs(32, seed=11)})
    node, edits = torch.split(out[Columns.ACTION_DIST_INPUTS], [K, M * (L + C)], dim=-1)
    assert float(node.abs().max()) <= 1.5 and float(edits.abs().max()) <= 0.6


def test_inconsistent_spaces_raise():
    obs_space, _ = make_spaces()
    with pytest.raises(ValueError, match="nvec"):
        DSMNASModule(
            observation_space=obs_space,
            action_space=gym.spaces.MultiDiscrete([K, L, C + 1]),
            model_config={},
        )


# ----------------------------------------------------------------------- RLlib
class EditEnv(gym.Env):
    """Tiny env with the DSM-NAS spaces: reward 1 when the first edit's op is 3, 4 steps."""

    def __init__(self, config=None):
        self.observation_space, self.action_space = make_spaces()
        self._t = 0

    def _obs(self):
        val_acc = self.np_random.random(K).astype(np.float32)
        return {
            "tokens": self.np_random.integers(0, C, size=(K, L)).astype(np.int64),
            "val_acc": val_acc,
            "adj": weak_to_better_adj(val_acc),
            "op_mask": np.ones((L, C), dtype=np.float32),
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action)
        if not self.action_space.contains(action):
            raise ValueError(f"action {action} outside {self.action_space}")
        self._t += 1
        return self._obs(), float(action[2] == 3), self._t >= 4, False, {}


def test_ppo_trains_the_module(ray_session):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    config = (
        PPOConfig()
        .environment(EditEnv)
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=128, minibatch_size=64, num_epochs=2, lr=3e-3)
        .rl_module(
            rl_module_spec=RLModuleSpec(module_class=DSMNASModule, model_config={"hidden_size": 32})
        )
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        obs = random_obs(64, seed=12)
        actions = torch.zeros(64, 1 + 2 * M, dtype=torch.int64)

        def p_first_op_is_3():
            # The env runner's module is inference-only: copy its weights into a full one.
            module = make_module(hidden_size=32)
            module.set_state(algo.get_module().get_state())
            logits = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: actions})[
                Columns.ACTION_DIST_INPUTS
            ]
            return float(decision_probs(module, logits.detach())[2][:, 3].mean())

        before = p_first_op_is_3()
        for _ in range(3):
            result = algo.train()
        loss = result["learners"]["default_policy"]["total_loss"]
        assert math.isfinite(float(loss))
        assert p_first_op_is_3() > before + 0.01  # seeds 0-3 gave +0.04 to +0.06
    finally:
        algo.stop()


def test_appo_trains_the_module_with_its_target_network(ray_session):
    from ray.rllib.algorithms.appo import APPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    config = (
        APPOConfig()
        .environment(EditEnv)
        .env_runners(num_env_runners=0)
        .learners(num_learners=0)  # APPO would otherwise start a learner actor
        .training(train_batch_size_per_learner=64, lr=1e-3)
        .rl_module(
            rl_module_spec=RLModuleSpec(module_class=DSMNASModule, model_config={"hidden_size": 32})
        )
        .reporting(min_time_s_per_iteration=0)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        # APPO's learner runs asynchronously: iterations without an update report NaN.
        losses = [
            algo.train().get("learners", {}).get("default_policy", {}).get("total_loss", math.nan)
            for _ in range(4)
        ]
        assert any(math.isfinite(float(x)) for x in losses), losses
        state = algo.get_module().get_state()
        assert all(np.isfinite(v).all() for v in state.values())
    finally:
        algo.stop()
