"""Where the controller's Linear, Embedding and LSTMCell layers come from.

`TORCH_LAYERS` gives torch's own (one search, one parameter set: the default, what every
lone search uses). `PopulationLayers(S)` gives layers that hold S parameter sets stacked
along a leading axis (the same parameter names, shape (S, ...)) and apply, to each row of a
batch, the set of the search that row belongs to (`members.index`, one search index per
batch row, set before each forward pass). So the same `DSMController` code computes S
independent searches as one batch: S small matrix products become one `torch.bmm`.

Layouts: a population layer reads its input as (B, n, features), B the batch rows (as many as
`members.index`), so every batch row's n items must be contiguous: (B, features), (B, K,
features), K nodes per graph flattened as b * K + i, and E edges per graph flattened in graph
order (`torch_geometric.utils.dense_to_sparse` numbers them so; every subspace graph of one
population has the same K(K-1)/2 edges count, one per pair of centers).

Each search's parameters are those of a lone controller built with torch's layers under that
search's seed (`stack_members`), so a population member starts where a lone search of the
same controller and seed would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["TORCH_LAYERS", "Members", "PopulationLayers", "stack_members"]


class _TorchLayers:
    """torch's layers."""

    linear = staticmethod(nn.Linear)
    embedding = staticmethod(nn.Embedding)
    lstm_cell = staticmethod(nn.LSTMCell)


TORCH_LAYERS = _TorchLayers()


@dataclass
class Members:
    """The search index of each batch row, shared by all layers of one population."""

    index: Optional[Tensor] = field(default=None)
    aligned: bool = False
    """Row b is search b, for every search (the usual batch): the stacked parameters apply
    as they are, with no per-row copy."""

    def set(self, index: Tensor, size: int) -> None:
        self.index = index
        self.aligned = len(index) == size and torch.equal(index, torch.arange(size))

    def rows(self) -> Tensor:
        if self.index is None:
            raise RuntimeError("a population layer ran before its batch's members were set")
        return self.index

    def take(self, param: Tensor) -> Tensor:
        """`param`'s set of each batch row."""
        return param if self.aligned else param[self.rows()]


class PopulationLinear(nn.Module):
    """nn.Linear with `size` weight sets: row b uses set members.index[b]."""

    def __init__(self, size: int, in_features: int, out_features: int, bias: bool,
                 members: Members) -> None:
        super().__init__()
        self.members = members
        self.weight = nn.Parameter(torch.empty(size, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(size, out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        rows = self.members.rows()
        out_features = self.weight.shape[1]
        if x.numel() == 0:
            return x.new_zeros(*x.shape[:-1], out_features)
        x3 = x.reshape(rows.shape[0], -1, x.shape[-1])
        y = torch.bmm(x3, self.members.take(self.weight).transpose(1, 2))
        if self.bias is not None:
            y = y + self.members.take(self.bias).unsqueeze(1)
        return y.reshape(*x.shape[:-1], out_features)


class PopulationEmbedding(nn.Module):
    """nn.Embedding with `size` tables: the indices of row b look up table members.index[b]."""

    def __init__(self, size: int, num_embeddings: int, embedding_dim: int,
                 members: Members) -> None:
        super().__init__()
        self.members = members
        self.weight = nn.Parameter(torch.empty(size, num_embeddings, embedding_dim))

    def forward(self, index: Tensor) -> Tensor:
        rows = self.members.rows()
        flat = index.reshape(rows.shape[0], -1)
        if self.members.aligned:
            table = torch.arange(rows.shape[0]).unsqueeze(1)
            return self.weight[table, flat].reshape(*index.shape, -1)
        return self.weight[rows.unsqueeze(1), flat].reshape(*index.shape, -1)


class PopulationLSTMCell(nn.Module):
    """nn.LSTMCell with `size` weight sets (torch's gate order i, f, g, o)."""

    def __init__(self, size: int, input_size: int, hidden_size: int, members: Members) -> None:
        super().__init__()
        self.members = members
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(size, 4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(size, 4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(size, 4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(size, 4 * hidden_size))

    def forward(self, x: Tensor, state: Optional[tuple[Tensor, Tensor]] = None):
        take = self.members.take
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        gates = (
            torch.bmm(take(self.weight_ih), x.unsqueeze(-1)).squeeze(-1) + take(self.bias_ih)
            + torch.bmm(take(self.weight_hh), h.unsqueeze(-1)).squeeze(-1) + take(self.bias_hh)
        )
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class PopulationLayers:
    """Layers of a population of `size` searches; `members` says which search each batch
    row belongs to."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.members = Members()

    def linear(self, in_features: int, out_features: int, bias: bool = True):
        return PopulationLinear(self.size, in_features, out_features, bias, self.members)

    def embedding(self, num_embeddings: int, embedding_dim: int):
        return PopulationEmbedding(self.size, num_embeddings, embedding_dim, self.members)

    def lstm_cell(self, input_size: int, hidden_size: int):
        return PopulationLSTMCell(self.size, input_size, hidden_size, self.members)


def stack_members(population: nn.Module, members: list[nn.Module]) -> None:
    """Set `population`'s stacked parameters to those of the lone `members` (same module
    class built with torch's layers), member i at index i."""
    states = [m.state_dict() for m in members]
    with torch.no_grad():
        for name, value in population.state_dict(keep_vars=True).items():
            value.copy_(torch.stack([s[name] for s in states]))
