"""The DSM-NAS controller as an RLlib (new API stack) TorchRLModule.

One env step = 1 + 2M decisions, made by one LSTMCell:

0. **Global search.** The LSTM's first input is the pooled graph feature (see
   `policies.gnn`); a pointer (additive attention) over the K node features picks the center.
   Logits: `node_logit_scale * tanh(score)`.
1. **Local search**, M times: a position, then an op for it. Each decision's input is the
   embedding of the previous decision, so every decision is conditioned on all earlier ones
   through the LSTM state:
   - after the node decision: the chosen node's feature from the encoder (this is how the
     edits are conditioned on the chosen center);
   - after a position decision p: a learned position vector plus a projection of the
     token vector of the op the chosen center has at p (so the op head knows which op would
     leave the center unchanged);
   - after an op decision c: a learned op vector.
   Logits: `edit_logit_scale * tanh(head(h))`. The op decision at position p adds
   `clamp(log(op_mask[p]), min=FLOAT_MIN)`; a position whose mask row is all zero is masked
   out the same way. With `mask_noop_edits` the op decision also masks, the same way, the op
   the chosen center has at p, so that no edit leaves the center's token unchanged; where
   that op is the only one the mask allows at p, it stays allowed (an all-masked row would
   have no valid choice). Earlier edits do not change this mask: an edit that revisits a
   position may still set the op an earlier edit set, so D(alpha, beta) can be < M, but
   beta != alpha whenever some chosen position allows another op.

The action is `[node, pos_1, op_1, ..., pos_M, op_M]` (`MultiDiscrete([K] + [L, C] * M)`) and
`ACTION_DIST_INPUTS` concatenates the 1 + 2M logit vectors, so the action distribution is
`TorchMultiCategorical` over `input_lens = [K] + [L, C] * M`. Because the logits of a decision
depend on earlier decisions, `_forward_train` replays the stored actions through the decoder
(teacher forcing); `dist.logp(actions)` of the train pass then equals the sampled
`ACTION_LOGP`, and `dist.entropy()` is the sum of the per-decision entropies (each taken
given the earlier stored decisions).

Exploration samples every decision; inference takes the argmax of every decision
(`greedy_inference=True`, the default) or samples as exploration does.

For actor-critic learners: `compute_values` is a small MLP on the pooled graph feature, so
the encoder is shared and the value loss trains it too (`vf_share_layers`, which PPO and
APPO put into every model_config, is ignored); the policy network is one submodule
(`DSMController`), so APPO's target network (`TargetNetworkAPI`) is a deep copy of it that
replays the stored actions like `_forward_train`. Checked: PPO and APPO train it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import gymnasium as gym
import torch
from torch import Tensor, nn

from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import (
    TARGET_NETWORK_ACTION_DIST_INPUTS,
    TargetNetworkAPI,
    ValueFunctionAPI,
)
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.utils.torch_utils import FLOAT_MIN

from dsmnas.policies.gnn import MESSAGE_PASSING, SubspaceGraphEncoder
from dsmnas.policies.layers import TORCH_LAYERS
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.mo_subspaces import OBSERVATION_KEY

__all__ = ["DSMController", "DSMModuleConfig", "DSMNASModule", "OBS_KEYS", "dsm_module_spec"]

OBS_KEYS = ("tokens", "val_acc", "adj", "op_mask")
"""Keys of the Dict observation the module reads."""

# Keys that RLlib's algorithm configs add to every `model_config` on their own
# (PPOConfig/APPOConfig._model_config_auto_includes); they carry no meaning here.
_RLLIB_AUTO_KEYS = frozenset({"vf_share_layers"})


@dataclass(frozen=True)
class DSMModuleConfig:
    """Settings of `DSMNASModule`; pass them as `dsm_module_spec(model_config={...})`.

    K, L, C and M are not settings: the module reads them from its observation and action
    spaces.
    """

    hidden_size: int = 64
    """Width of the node and graph features, the LSTMCell and the decision embeddings."""
    token_dim: int = 16
    """Size of the learnable vector of each (position, op) pair; a center concatenates L."""
    use_graph: bool = True
    """Encode the graph with the GNN; False: two FC layers per node (the paper's Fig. 8b)."""
    message_passing: str = "two-way"
    """The GNN's messages: "two-way" (the official code's: every node takes its K - 1
    incident edges, messages from [h_i, e_ij, e_ji]) or "one-way" (weaker -> better only,
    from [h_i, e_ij]; `dsm-oneway`); see `policies.gnn`."""
    node_logit_scale: float = 1.5
    """Node-choice logits are node_logit_scale * tanh(score), as in the official code."""
    edit_logit_scale: float = 0.6
    """Position and op logits are edit_logit_scale * tanh(x), as in the official code."""
    greedy_inference: bool = True
    """forward_inference takes each decision's argmax (True) or samples as exploration does."""
    mask_noop_edits: bool = False
    """Mask the op the chosen center already has at the chosen position (no no-op edits)."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "token_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        for name in ("node_logit_scale", "edit_logit_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0
            ):
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        for name in ("use_graph", "greedy_inference", "mask_noop_edits"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.message_passing not in MESSAGE_PASSING:
            raise ConfigError(f"message_passing must be one of {', '.join(MESSAGE_PASSING)}, "
                              f"got {self.message_passing!r}")

    @classmethod
    def from_dict(
        cls, model_config: "Optional[Mapping[str, Any] | DSMModuleConfig]"
    ) -> "DSMModuleConfig":
        """Build from an RLlib `model_config` dict; unknown keys raise ValueError.

        Keys that RLlib's algorithm configs inject on their own (`vf_share_layers`) are
        ignored: the value head always shares the graph encoder.
        """
        if isinstance(model_config, cls):
            return model_config
        model_config = dict(model_config or {})
        allowed = [f.name for f in dataclasses.fields(cls)]
        for key in model_config:
            if key not in allowed and key not in _RLLIB_AUTO_KEYS:
                raise ConfigError(
                    f"unknown DSMNASModule model_config key {key!r}; allowed keys: {allowed}"
                )
        return cls(**{k: v for k, v in model_config.items() if k in allowed})


def node_features(observation_space: gym.Space) -> int:
    """Per-center features besides the tokens and accuracy: the width of the observation's
    `objectives` key (DSM-NAS with several objectives, `envs.mo_subspaces`), else 0."""
    spaces = getattr(observation_space, "spaces", {})
    return int(spaces[OBSERVATION_KEY].shape[-1]) if OBSERVATION_KEY in spaces else 0


def _read_spaces(
    observation_space: gym.Space, action_space: gym.Space
) -> tuple[int, int, int, int]:
    """Return (K, L, C, M) from the spaces, checking that they agree with each other."""
    if not isinstance(observation_space, gym.spaces.Dict) or any(
        key not in observation_space.spaces for key in OBS_KEYS
    ):
        raise ConfigError(
            f"observation space must be a gymnasium Dict with keys {OBS_KEYS}, "
            f"got {observation_space}"
        )
    spaces = observation_space.spaces
    if len(spaces["tokens"].shape) != 2 or len(spaces["op_mask"].shape) != 2:
        raise ConfigError(
            f"tokens must have shape (K, L) and op_mask (L, C), got "
            f"{spaces['tokens'].shape} and {spaces['op_mask'].shape}"
        )
    num_nodes, num_positions = spaces["tokens"].shape
    num_ops = spaces["op_mask"].shape[1]
    expected = {
        "val_acc": (num_nodes,),
        "adj": (num_nodes, num_nodes),
        "op_mask": (num_positions, num_ops),
    }
    for key, shape in expected.items():
        if tuple(spaces[key].shape) != shape:
            raise ConfigError(
                f"observation {key!r} must have shape {shape} (K={num_nodes}, "
                f"L={num_positions} from tokens), got {spaces[key].shape}"
            )
    if not isinstance(action_space, gym.spaces.MultiDiscrete):
        raise ConfigError(f"action space must be MultiDiscrete, got {action_space}")
    nvec = [int(n) for n in action_space.nvec]
    num_edits = (len(nvec) - 1) // 2
    if num_edits < 1 or nvec != [num_nodes] + [num_positions, num_ops] * num_edits:
        raise ConfigError(
            f"action space must be MultiDiscrete([K] + [L, C] * M) with K={num_nodes}, "
            f"L={num_positions}, C={num_ops}, M >= 1; got nvec={nvec}"
        )
    return num_nodes, num_positions, num_ops, num_edits


def _noop_masked_logits(allowed: Tensor, current_op: Tensor) -> Tensor:
    """Additive logit mask (B, C) of one op decision: `allowed` (B, C), the op mask row of
    the chosen position, without `current_op` (B,), unless that op is the row's only allowed
    one (then the row is kept as it is)."""
    others = allowed.scatter(-1, current_op.unsqueeze(-1), 0.0)
    has_other = others.amax(dim=-1, keepdim=True) > 0
    return torch.clamp(torch.log(torch.where(has_other, others, allowed)), min=FLOAT_MIN)


class DSMController(nn.Module):
    """The policy network (graph encoder + LSTM decoder), pure torch; see the module docstring.

    Kept apart from the RLModule so that APPO's target network is one deep copy of it.
    """

    def __init__(
        self, num_nodes: int, num_positions: int, num_ops: int, num_edits: int,
        cfg: DSMModuleConfig, layers=TORCH_LAYERS, node_features: int = 0,
    ) -> None:
        super().__init__()
        self.num_nodes, self.num_positions = num_nodes, num_positions
        self.num_ops, self.num_edits = num_ops, num_edits
        self.node_logit_scale = cfg.node_logit_scale
        self.edit_logit_scale = cfg.edit_logit_scale
        self.mask_noop_edits = cfg.mask_noop_edits
        hidden = cfg.hidden_size
        self.encoder = SubspaceGraphEncoder(
            num_positions, num_ops, hidden, cfg.token_dim, cfg.use_graph, layers,
            cfg.message_passing, node_features,
        )
        self.lstm = layers.lstm_cell(hidden, hidden)
        self.pointer_query = layers.linear(hidden, hidden, bias=False)
        self.pointer_key = layers.linear(hidden, hidden)
        self.pointer_score = layers.linear(hidden, 1, bias=False)
        self.position_head = layers.linear(hidden, num_positions)
        self.op_head = layers.linear(hidden, num_ops)
        self.position_embedding = layers.embedding(num_positions, hidden)
        self.current_op_input = layers.linear(cfg.token_dim, hidden, bias=False)
        self.op_embedding = layers.embedding(num_ops, hidden)

    def encode(self, obs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Node features (B, K, hidden) and graph feature (B, hidden) of a Dict obs batch."""
        extra = obs[OBSERVATION_KEY].float() if OBSERVATION_KEY in obs else None
        return self.encoder(obs["tokens"].long(), obs["val_acc"].float(), obs["adj"].float(),
                            extra)

    def forward(
        self,
        obs: Mapping[str, Tensor],
        actions: Optional[Tensor] = None,
        greedy: bool = False,
        uniforms: Optional[Tensor] = None,
    ) -> tuple[Tensor, Optional[Tensor], Tensor, Tensor]:
        """Run the 1 + 2M decisions; replay `actions` (B, 1 + 2M) if given, else choose.

        Choosing samples with `torch.multinomial` (torch's global generator), or, where
        `uniforms` (B, 1 + 2M) in [0, 1) are given, by inverting each decision's cumulative
        distribution at them (the same distribution, from the caller's random streams).

        Returns (actions (B, 1 + 2M) int64, summed log-prob (B,) or None when replaying,
        concatenated logits (B, K + M * (L + C)), graph feature (B, hidden)).
        """
        tokens = obs["tokens"].long()
        nodes, graph = self.encode(obs)
        op_mask = obs["op_mask"].float()
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        op_mask_logits = torch.clamp(torch.log(op_mask), min=FLOAT_MIN)  # (B, L, C)
        position_mask_logits = torch.clamp(torch.log(op_mask.amax(dim=-1)), min=FLOAT_MIN)

        logits_per_decision: list[Tensor] = []
        choices: list[Tensor] = []
        logps: list[Tensor] = []

        def decide(logits: Tensor) -> Tensor:
            logits_per_decision.append(logits)
            step = len(choices)
            if actions is not None:
                choice = actions[:, step]
            else:
                # Normalised exactly as torch's Categorical does, so that the distribution
                # class rebuilt from ACTION_DIST_INPUTS gives the same log-probabilities.
                log_probs = logits - logits.logsumexp(dim=-1, keepdim=True)
                if greedy:
                    choice = logits.argmax(dim=-1)
                elif uniforms is not None:
                    cdf = log_probs.exp().cumsum(dim=-1)
                    u = uniforms[:, step : step + 1] * cdf[:, -1:]
                    choice = torch.searchsorted(cdf, u, right=True).squeeze(-1)
                    choice = choice.clamp(max=logits.shape[-1] - 1)
                else:
                    choice = torch.multinomial(log_probs.exp(), 1).squeeze(-1)
                logps.append(log_probs.gather(-1, choice.unsqueeze(-1)).squeeze(-1))
            choices.append(choice)
            return choice

        # Global search: point at one of the K centers.
        state = self.lstm(graph)
        keys = self.pointer_key(nodes)  # (B, K, H)
        scores = self.pointer_score(
            torch.tanh(keys + self.pointer_query(state[0]).unsqueeze(1))
        ).squeeze(-1)
        node = decide(self.node_logit_scale * torch.tanh(scores))
        center_tokens = tokens[rows, node]  # (B, L)
        step_input = nodes[rows, node]

        # Local search: M (position, op) edits of the chosen center.
        for _ in range(self.num_edits):
            state = self.lstm(step_input, state)
            position = decide(
                self.edit_logit_scale * torch.tanh(self.position_head(state[0]))
                + position_mask_logits
            )
            current_op = center_tokens.gather(1, position.unsqueeze(1)).squeeze(1)
            current_vec = self.encoder.token_embedding(position * self.num_ops + current_op)
            step_input = self.position_embedding(position) + self.current_op_input(current_vec)
            state = self.lstm(step_input, state)
            op_logit_mask = (
                _noop_masked_logits(op_mask[rows, position], current_op)
                if self.mask_noop_edits
                else op_mask_logits[rows, position]
            )
            op = decide(
                self.edit_logit_scale * torch.tanh(self.op_head(state[0])) + op_logit_mask
            )
            step_input = self.op_embedding(op)

        chosen = torch.stack(choices, dim=-1)
        logp = torch.stack(logps, dim=-1).sum(dim=-1) if logps else None
        return chosen, logp, torch.cat(logits_per_decision, dim=-1), graph


@dataclass
class _SampledStep:
    """One exploration step with its autograd graph: what `DSMNASModule._forward_train`
    uses instead of a replay when the update's batch is this step."""

    obs: dict
    actions: Tensor
    versions: list
    """The parameters' in-place version counters when it was sampled (an optimizer step or
    a restored state changes them)."""
    train_out: dict

    @classmethod
    def of(cls, module: "DSMNASModule", batch: dict, actions: Tensor, dist_inputs: Tensor,
           graph: Tensor) -> "_SampledStep":
        obs = dict(batch[Columns.OBS])
        return cls(obs, actions, _versions(module), {
            Columns.ACTION_DIST_INPUTS: dist_inputs, Columns.EMBEDDINGS: graph,
        })

    def is_batch(self, module: "DSMNASModule", batch: dict) -> bool:
        obs = batch[Columns.OBS]
        return (
            torch.equal(batch[Columns.ACTIONS].long(), self.actions)
            and all(torch.equal(obs[k].to(v.dtype), v) for k, v in self.obs.items())
            and _versions(module) == self.versions
        )


def _versions(module: nn.Module) -> list:
    return [p._version for p in module.parameters()]


class DSMNASModule(TorchRLModule, ValueFunctionAPI, TargetNetworkAPI):
    """GNN + LSTM controller of DSM-NAS: picks a subspace center, then M (position, op) edits.

    Observation: Dict with `tokens` (K, L) int, `val_acc` (K,) float, `adj` (K, K) float
    (adj[i, j] = 1 iff edge i -> j) and `op_mask` (L, C) float. Action:
    `MultiDiscrete([K] + [L, C] * M)`. Settings: `DSMModuleConfig`. Implements
    `ValueFunctionAPI` (PPO, APPO, IMPALA) and `TargetNetworkAPI` (APPO).
    """

    reuse_sample_graph: bool = False
    """Keep the autograd graph of each exploration step for the update that follows (set by
    `trainables.reinforce.REINFORCE` where the Learner samples with this very module object;
    see `_forward_train`)."""

    def setup(self) -> None:
        self._sampled: Optional[_SampledStep] = None
        self.dsm_config = DSMModuleConfig.from_dict(self._controller_settings())
        self.node_features = node_features(self.observation_space)
        self.num_nodes, self.num_positions, self.num_ops, self.num_edits = _read_spaces(
            self.observation_space, self.action_space
        )
        self.input_lens = [self.num_nodes] + [self.num_positions, self.num_ops] * self.num_edits
        self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(
            input_lens=self.input_lens
        )
        self.pi = self._make_controller()
        hidden = self.dsm_config.hidden_size
        self.value_head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def _controller_settings(self) -> dict:
        """The `model_config` items that are `DSMModuleConfig` fields."""
        return self.model_config

    def _make_controller(self) -> DSMController:
        return DSMController(
            self.num_nodes, self.num_positions, self.num_ops, self.num_edits, self.dsm_config,
            node_features=self.node_features,
        )

    def _pi_kwargs(self, batch: dict, sampling: bool) -> dict:
        """Extra keyword arguments of `self.pi` for `batch` (none here; a population's
        module says which search each row is and gives its random draws)."""
        return {}

    # ----------------------------------------------------------------- distributions
    def get_train_action_dist_cls(self):
        return self.action_dist_cls

    def get_exploration_action_dist_cls(self):
        return self.action_dist_cls

    def get_inference_action_dist_cls(self):
        return self.action_dist_cls

    # ----------------------------------------------------------------- forward passes
    def forward_exploration(self, batch: dict, **kwargs) -> dict:
        # TorchRLModule's version switches every submodule to eval() and back around the
        # call; nothing here behaves differently in eval mode (no dropout, no batch norm).
        return self._forward_exploration(batch, **kwargs)

    def _forward_exploration(self, batch: dict, **kwargs) -> dict:
        if not self.reuse_sample_graph:
            with torch.no_grad():
                return self._sample(batch, greedy=False)
        actions, logp, dist_inputs, graph = self.pi(
            batch[Columns.OBS], **self._pi_kwargs(batch, sampling=True)
        )
        self._sampled = _SampledStep.of(self, batch, actions, dist_inputs, graph)
        return {
            Columns.ACTIONS: actions,
            Columns.ACTION_LOGP: logp.detach(),
            Columns.ACTION_DIST_INPUTS: dist_inputs.detach(),
        }

    def _forward_inference(self, batch: dict, **kwargs) -> dict:
        with torch.no_grad():
            return self._sample(batch, greedy=self.dsm_config.greedy_inference)

    def _forward_train(self, batch: dict, **kwargs) -> dict:
        sampled, self._sampled = self._sampled, None
        if sampled is not None and sampled.is_batch(self, batch):
            # The update's batch is exactly the step just sampled, with the same weights:
            # replaying it would repeat the sampling pass's computation on the same inputs,
            # so its graph serves (the same logits and gradients, bit for bit; one forward
            # pass less per update).
            return sampled.train_out
        _, _, dist_inputs, graph = self.pi(
            batch[Columns.OBS], actions=batch[Columns.ACTIONS].long(),
            **self._pi_kwargs(batch, sampling=False),
        )
        return {Columns.ACTION_DIST_INPUTS: dist_inputs, Columns.EMBEDDINGS: graph}

    def _sample(self, batch: dict, greedy: bool) -> dict:
        actions, logp, dist_inputs, _ = self.pi(
            batch[Columns.OBS], greedy=greedy, **self._pi_kwargs(batch, sampling=not greedy)
        )
        out = {
            Columns.ACTIONS: actions,
            Columns.ACTION_LOGP: logp,
            Columns.ACTION_DIST_INPUTS: dist_inputs,
        }
        return out

    # ----------------------------------------------------------------- value function
    def compute_values(self, batch: dict, embeddings: Optional[Tensor] = None) -> Tensor:
        """Value estimate (B,) from the pooled graph feature (encodes the obs if not given)."""
        if embeddings is None:
            _, embeddings = self.pi.encode(batch[Columns.OBS])
        return self.value_head(embeddings).squeeze(-1)

    # ----------------------------------------------------------------- target network (APPO)
    def make_target_networks(self) -> None:
        self._target_pi = make_target_network(self.pi)

    def get_target_network_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.pi, self._target_pi)]

    def forward_target(self, batch: dict, **kwargs) -> dict:
        """The target policy's logits for the stored actions (teacher forcing, as in training)."""
        _, _, dist_inputs, _ = self._target_pi(
            batch[Columns.OBS], actions=batch[Columns.ACTIONS].long()
        )
        return {TARGET_NETWORK_ACTION_DIST_INPUTS: dist_inputs}


def dsm_module_spec(model_config: Optional[Mapping[str, Any]] = None,
                    module_class: Optional[type] = None) -> RLModuleSpec:
    """The `RLModuleSpec` that every RLlib algorithm here learns with: the DSM-NAS controller
    `DSMNASModule` (or `module_class`: its population form
    `policies.population.PopulationDSMModule`, or any RLModule a test brings) with
    `model_config` (`DSMModuleConfig`'s keys; unknown keys raise when the module is built).
    Used by REINFORCE (`dsm` and its variants, `trainables.reinforce.reinforce_config`) and
    by the `ppo` and `appo` agents (`trainables.agents`)."""
    return RLModuleSpec(module_class=module_class or DSMNASModule,
                        model_config=model_config or {})
