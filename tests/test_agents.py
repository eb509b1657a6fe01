"""The other RLlib agents (ppo, appo, ppo-flat, trainables/agents.py) and DSM-NAS+ (dsm-plus,
trainables/variants.py) on DSMNAS-v0."""

import numpy as np
import pytest
import torch

from dsmnas.envs import DSMNASEnv, EnvConfig
from dsmnas.envs.spaces.base import hamming
from dsmnas.trainables import agents, variants
from dsmnas.trainables.methods import METHODS, resolve, run_method
from dsmnas.trainables.search import run_episode_search, run_search

BUDGET_S = 2500  # on the table; `nb201_data.budget_s` scales it for the embedded data


def center_vals(env_config, archs):
    """Validation accuracy of each architecture, looked up without charging a clock."""
    probe = DSMNASEnv(env_config.to_dict())
    return [probe.benchmark.query(probe.space.parse(a), charge=False).val_acc for a in archs]


def replay(env_config, history):
    """Replay a search's history from the env's initial centers (`reset` with the config's
    seed, or its init_centers): each query is within M edits of its subspace's center and is
    accepted iff it beats that center. Returns the final centers."""
    env = DSMNASEnv(env_config.to_dict())
    env.reset()
    centers = [env.space.format(c) for c in env.graph.centers]
    vals = list(env.graph.val_acc)
    for row in history.itertuples():
        center = env.space.parse(centers[row.subspace])
        assert hamming(env.space.parse(row.arch), center) <= env_config.M, row
        assert row.accepted == (row.val_acc > vals[row.subspace]), row
        if row.accepted:
            centers[row.subspace], vals[row.subspace] = row.arch, row.val_acc
    return centers


@pytest.mark.parametrize("method", ["ppo", "appo", "ppo-flat"])
def test_agent_spends_at_most_the_budget_and_answers_the_best_center(
    method, nb201_data, ray_session
):
    cfg = EnvConfig(table=nb201_data.table, budget_s=nb201_data.budget_s(BUDGET_S), seed=0)
    r = run_method(method, cfg)
    h = r.history
    DSMNASEnv(cfg.to_dict()).space.parse(r.arch)  # a valid architecture
    assert r.queries == len(h) > 5
    assert r.sim_time_s == pytest.approx(h.cost_s.sum()) and r.sim_time_s <= cfg.budget_s
    assert h.sim_time_s.is_monotonic_increasing and list(h.step) == list(range(len(h)))
    # the env started from the seed's centers, every query edited its center by at most M
    # positions, and the final graph is what the accepted queries made of it
    assert replay(cfg, h) == r.final_centers
    # the answer is the best of the K final centers
    assert r.arch in r.final_centers
    assert r.val_acc == pytest.approx(max(center_vals(cfg, r.final_centers)))
    nb201_data.assert_test_acc(r.test_acc)
    assert r.config["method"] == method and r.config["agent"]["gamma"] == 0.0


def test_ppo_same_seed_same_history(nb201_data, ray_session):
    cfg = EnvConfig(table=nb201_data.table, budget_s=nb201_data.budget_s(BUDGET_S), seed=5)
    a, b = agents.run_ppo(cfg, {}), agents.run_ppo(cfg, {})
    assert len(a.history) > 5
    assert a.history.equals(b.history) and (a.arch, a.val_acc) == (b.arch, b.val_acc)
    c = agents.run_ppo(EnvConfig(table=nb201_data.table, budget_s=cfg.budget_s, seed=6), {})
    assert not c.history.equals(a.history)


def module_params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_ppo_updates_the_module_and_syncs_the_sampler(nb201_data, ray_session):
    from dsmnas.policies.dsm_module import DSMNASModule

    cfg = EnvConfig(table=nb201_data.table, budget_s=nb201_data.budget_s(25_000), seed=1)
    algo = agents.agent_config("ppo", cfg).build_algo()
    try:
        learner_module = algo.learner_group._learner.module["default_policy"]
        assert isinstance(learner_module, DSMNASModule)
        before = module_params(learner_module)
        for _ in range(2):
            result = algo.train()
        after = module_params(learner_module)
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        # the controller and the value head both learned
        assert any(k.startswith("pi.") for k in changed)
        assert any(k.startswith("value_head.") for k in changed)
        trained = result["learners"]["default_policy"]["num_module_steps_trained"]
        assert trained >= 8  # one 8-step batch per train(), 4 epochs
        # the env runner samples with the updated weights
        sampler = algo.env_runner_group.local_env_runner.module.state_dict()
        for k, v in sampler.items():
            assert torch.equal(v, after[k]), k
    finally:
        algo.stop()


def test_ppo_flat_uses_the_default_model_on_a_flat_observation(nb201_data, ray_session):
    from gymnasium.spaces import Box
    from ray.rllib.connectors.common.flatten_observations import FlattenObservations

    from dsmnas.policies.dsm_module import DSMNASModule

    cfg = EnvConfig(table=nb201_data.table, budget_s=nb201_data.budget_s(BUDGET_S), seed=2)
    algo = agents.agent_config("ppo-flat", cfg).build_algo()
    try:
        runner = algo.env_runner_group.local_env_runner
        assert any(isinstance(c, FlattenObservations) for c in runner._env_to_module.connectors)
        K, L, C = cfg.K, 6, 5
        for module in (runner.module, algo.learner_group._learner.module["default_policy"]):
            assert not isinstance(module, DSMNASModule)
            space = module.observation_space
            assert isinstance(space, Box) and space.shape == (K * L + K + K * K + L * C,)
        algo.train()  # the learner trains on the flat observations the runner wrote
    finally:
        algo.stop()


def test_dsm_plus_starts_from_the_final_centers_of_the_cifar10_search(nb201_data, ray_session):
    budget_s = nb201_data.budget_s(2000)
    cfg = EnvConfig(table=nb201_data.table, budget_s=budget_s, seed=3, dataset="cifar100")
    r = run_method("dsm-plus", cfg)
    source = run_search(EnvConfig(table=nb201_data.table, budget_s=budget_s, seed=3), progress=None)
    assert r.queries > 3 and source.queries > 5
    transfer = r.config["transfer"]
    assert transfer["init_centers"] == source.final_centers
    assert r.config["env"]["init_centers"] == source.final_centers
    assert (transfer["source_arch"], transfer["source_queries"]) == (source.arch, source.queries)
    assert transfer["charged_to_budget"] is False
    # the target search ran on cifar100 and paid only for its own queries
    assert r.config["env"]["dataset"] == "cifar100"
    assert r.sim_time_s == pytest.approx(r.history.cost_s.sum()) and r.sim_time_s <= budget_s
    # the target search started from the transferred centers (replayed on cifar100)
    target_cfg = EnvConfig.from_dict(r.config["env"])
    assert replay(target_cfg, r.history) == r.final_centers
    # the answer is at least as good (on cifar100) as the best transferred center
    assert r.val_acc >= max(center_vals(cfg, source.final_centers))


@pytest.mark.parametrize("dataset", ["cifar10"])
def test_dsm_plus_rejects_a_cifar10_target(dataset, nb201_data):
    with pytest.raises(ValueError, match="cifar100, ImageNet16-120, got 'cifar10'"):
        variants.run_dsm_plus(EnvConfig(table=nb201_data.table, dataset=dataset), {})


@pytest.mark.parametrize(
    "method, settings, message",
    [
        ("ppo", {"lr": 1e-3, "epochs": 3}, r"unknown ppo setting\(s\) \['epochs'\]; allowed: "
         r"clip_param, entropy_coeff, gamma, lr, message_passing, minibatch_size, num_epochs"),
        ("appo", {"batch": 3}, r"unknown appo setting\(s\) \['batch'\]; allowed: .*lr"),
        ("ppo-flat", {"use_graph": False}, r"unknown ppo-flat setting\(s\) \['use_graph'\]"),
        ("dsm-plus", {"gamma": 0}, r"unknown dsm-plus setting\(s\) \['gamma'\]; allowed: "
         r"baseline_decay, batch_size, entropy, lr, mask_noop_edits, message_passing, use_graph, "
         r"weight_decay"),
        ("ppo", {"gamma": 1.5}, r"gamma must be a number in \[0, 1\], got 1.5"),
        ("ppo", {"minibatch_size": 16}, r"minibatch_size \(16\) must be <= train_batch_size"),
        ("appo", {"lr": -1}, r"lr must be a number > 0, got -1"),
        ("ppo-flat", {"hidden": []}, r"hidden must be a non-empty list"),
    ],
)
def test_bad_settings_raise_before_anything_runs(method, settings, message):
    # checked before an algorithm is built: no Ray needed, nothing runs
    with pytest.raises(ValueError, match=message):
        resolve(method)(EnvConfig(dataset="cifar100"), settings, None)


def test_all_agents_are_registered():
    for name in ("ppo", "appo", "ppo-flat", "dsm-plus"):
        assert name in METHODS and METHODS[name].description
        assert callable(resolve(name))
    assert agents.FlatPPOSettings(hidden=[32, 16]).hidden == (32, 16)
    assert np.isclose(agents.PPOSettings().gamma, 0.0)


def test_the_agents_table_and_the_methods_registry_agree():
    # every agent of the table is a method whose settings are the table's settings class
    for name, agent in agents.AGENTS.items():
        method = METHODS[name]
        assert method.settings == (f"dsmnas.trainables.agents:{agent.settings.__name__}",)
        assert resolve(name).__name__ == f"run_{name.replace('-', '_')}"
        assert method.run == f"dsmnas.trainables.agents:{resolve(name).__name__}"
    with pytest.raises(ValueError, match="unknown agent 'dqn'; allowed: ppo, appo, ppo-flat"):
        agents.agent_config("dqn", EnvConfig(seed=0))


def test_one_search_needs_one_in_process_env():
    cfg = EnvConfig(seed=0)
    remote = agents.agent_config("ppo", cfg).env_runners(num_env_runners=1)
    with pytest.raises(ValueError, match="num_env_runners must be 0 and num_envs_per_env_"
                                         "runner 1, got 1 and 1"):
        run_episode_search(remote, cfg)
    with pytest.raises(ValueError, match="is not env_config"):
        run_episode_search(agents.agent_config("ppo", cfg), EnvConfig(seed=1))
