"""Population mode: S searches as one batch, each its own search."""

import pytest
import torch
from torch import nn

from dsmnas.envs import EnvConfig
from dsmnas.policies.layers import PopulationLayers, stack_members
from dsmnas.trainables.population import run_population


def test_population_layers_compute_each_row_with_its_own_parameters():
    torch.manual_seed(0)
    lone = [nn.Linear(5, 3) for _ in range(4)]
    layers = PopulationLayers(4)
    pop = layers.linear(5, 3)
    stack_members(pop, lone)
    x = torch.randn(4, 7, 5)
    for index in (torch.arange(4), torch.tensor([2, 0, 3, 1])):
        layers.members.set(index, 4)
        y = pop(x)
        for row, member in enumerate(index.tolist()):
            assert torch.allclose(y[row], lone[member](x[row]), atol=1e-6)


def test_population_is_reproducible_and_members_do_not_depend_on_each_other():
    cfg = EnvConfig(budget_s=60_000)
    a = run_population(cfg, [0, 1, 2])
    b = run_population(cfg, [0, 1, 2])
    c = run_population(cfg, [2, 7])
    assert [r.seed for r in a] == [0, 1, 2]
    for x, y in zip(a, b):
        assert x.history.equals(y.history) and x.arch == y.arch
    # a member's start and random stream are its seed's: in another population the same seed
    # makes the same queries (batched products may round differently later on)
    assert a[2].history.head(10).equals(c[0].history.head(10))
    assert not a[0].history.equals(a[1].history)
    assert all(r.queries > 5 and r.sim_time_s <= 60_000 for r in a)
    assert a[0].config["population"]["size"] == 3


def test_every_update_takes_one_step_of_each_search(monkeypatch):
    """Also after a member's search ends (RLlib's runner would take a second step of every
    other member to fill its batch if the vector env reset that member)."""
    from ray.rllib.core.columns import Columns

    from dsmnas.envs.population import MEMBER_KEY
    from dsmnas.trainables.population import PopulationREINFORCELearner

    batches = []
    loss = PopulationREINFORCELearner.compute_loss_for_module

    def logged(self, **kw):
        batches.append(sorted(kw["batch"][Columns.OBS][MEMBER_KEY].long().tolist()))
        return loss(self, **kw)

    monkeypatch.setattr(PopulationREINFORCELearner, "compute_loss_for_module", logged)
    results = run_population(EnvConfig(budget_s=40_000), [0, 1, 2, 3])
    assert len({r.queries for r in results}) > 1  # the searches end at different rounds
    assert len(batches) > max(r.queries for r in results)
    assert all(b == [0, 1, 2, 3] for b in batches)


@pytest.mark.parametrize("passing", ["two-way", "one-way"])
def test_a_population_controller_computes_each_row_as_its_lone_controller(passing):
    from dsmnas.policies.dsm_module import DSMController, DSMModuleConfig
    from tests.test_policy import random_obs

    cfg = DSMModuleConfig(message_passing=passing)
    dims = (4, 6, 5, 2)  # K, L, C, M
    lone = []
    for seed in range(3):
        torch.manual_seed(seed)
        lone.append(DSMController(*dims, cfg))
    layers = PopulationLayers(3)
    population = DSMController(*dims, cfg, layers=layers)
    stack_members(population, lone)
    obs = random_obs(3, seed=5, k=4)
    actions = torch.stack([lone[i](obs)[0][i] for i in range(3)])
    layers.members.set(torch.arange(3), 3)
    _, _, logits, graph = population(obs, actions=actions)
    for i in range(3):
        _, _, lone_logits, lone_graph = lone[i]({k: v[i:i + 1] for k, v in obs.items()},
                                                actions=actions[i:i + 1])
        torch.testing.assert_close(logits[i:i + 1], lone_logits)
        torch.testing.assert_close(graph[i:i + 1], lone_graph)
