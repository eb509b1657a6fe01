"""`PopulationDSMModule`: S DSM-NAS controllers, each with its own parameters, as one module.

A population runs S independent searches of one configuration (same K, M, settings) with
different seeds in one process (`trainables.population`). This module is `DSMNASModule`
with `policies.layers.PopulationLayers`: every parameter has a leading axis of size S, and a
batch row of search i (observation key `member` = i) is computed with parameter set i only.
Nothing couples the searches:

- parameters: member i's start as a lone `DSMController` built under seed `seeds[i]`;
- sampling: each member draws its decisions from its own `torch.Generator` (seeded
  `seeds[i]`), by inverse CDF (`DSMController.forward(uniforms=...)`), so its draws do not
  depend on the other members;
- gradients: a member's parameters enter only its own rows' losses (the Learner sums, not
  averages, over rows: each member's gradient is its lone gradient); Adam is elementwise, so
  one Adam over the stacked parameters is S independent Adams (no global gradient clipping:
  `trainables.population` refuses `grad_clip`).

model_config: the `DSMModuleConfig` keys plus `population_seeds` (the members' seeds).
"""

from __future__ import annotations

import torch
from ray.rllib.core.columns import Columns

from dsmnas.envs.errors import ConfigError
from dsmnas.policies.dsm_module import DSMController, DSMNASModule
from dsmnas.envs.population import MEMBER_KEY
from dsmnas.policies.layers import PopulationLayers, stack_members

__all__ = ["PopulationDSMModule", "MEMBER_KEY"]

class PopulationDSMModule(DSMNASModule):
    """S DSM-NAS controllers computed as one batch; see the module docstring."""

    def _controller_settings(self) -> dict:
        settings = dict(self.model_config)
        seeds = settings.pop("population_seeds", None)
        if not seeds:
            raise ConfigError("PopulationDSMModule needs model_config['population_seeds']")
        self.seeds = [int(s) for s in seeds]
        return settings

    def _make_controller(self) -> DSMController:
        dims = (self.num_nodes, self.num_positions, self.num_ops, self.num_edits)
        self.layers = PopulationLayers(len(self.seeds))
        extra = self.node_features
        population = DSMController(*dims, self.dsm_config, layers=self.layers,
                                   node_features=extra)
        lone = []
        for seed in self.seeds:
            torch.manual_seed(seed)
            lone.append(DSMController(*dims, self.dsm_config, node_features=extra))
        stack_members(population, lone)
        self.generators = [torch.Generator().manual_seed(seed) for seed in self.seeds]
        return population

    def _pi_kwargs(self, batch: dict, sampling: bool) -> dict:
        members = batch[Columns.OBS][MEMBER_KEY].long().reshape(-1)
        self.layers.members.set(members, len(self.seeds))
        if not sampling:
            return {}
        draws = 1 + 2 * self.num_edits
        return {"uniforms": torch.stack(
            [torch.rand(draws, generator=self.generators[m]) for m in members.tolist()]
        )}

    def compute_values(self, batch, embeddings=None):
        raise ConfigError("a population module serves REINFORCE only (no value function)")

    def get_state(self, *args, **kwargs):
        state = super().get_state(*args, **kwargs)
        state["population_generators"] = [g.get_state() for g in self.generators]
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        for g, s in zip(self.generators, state.get("population_generators", ())):
            g.set_state(s)
