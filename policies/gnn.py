"""Subspace-graph encoder of the DSM-NAS controller (pure torch + torch-geometric, no RLlib).

This module owns how a batch of subspace graphs becomes node and graph features:

* **Node features.** Every (position, op) pair has its own learnable vector of `token_dim`
  numbers; a center's token embedding is the *concatenation* of its L vectors (the paper,
  Sec. III-B), shape (L * token_dim,). The node's input feature is a linear projection of
  [token embedding, validation accuracy] to `hidden_size` (the official code feeds the
  accuracy too).
* **Edge features.** Along an edge i -> j the edge feature is h_j - h_i of the
  *concatenated token embeddings*, so it is exactly zero in the slices of the positions where
  the two centers agree: the "modification" that leads from center i to center j (on the
  graph's edges, weaker -> better, from the weaker center to the better one).
* **Message passing** (`use_graph=True`): two `EdgeSAGEConv` layers, a GRAPE-style
  EdgeGraphSAGE built on torch-geometric's `MessagePassing`. Each layer computes one message
  per edge, mean-aggregates them at the target, updates the node from [h, aggregate] and
  then updates the edge from [e, h_src', h_dst']. Two ways to pass them
  (`message_passing`):
  - `"two-way"` (the default; the official code's aggregation): every node takes all its
    K - 1 incident edges. Each pair of centers is an edge in both directions, i -> j with
    e_ij = h_j - h_i and j -> i with e_ji = h_i - h_j (formed from the same pair; each
    direction then evolves with its own edge update), and the message i -> j is built from
    [h_i, e_ij, e_ji]. Which of the two is better the nodes carry in their accuracy input.
  - `"one-way"` (this project's first version, kept as a named variant, `dsm-oneway`):
    messages only along the graph's edges, weaker -> better, built from [h_i, e_ij], so a
    center hears only from the centers weaker than it and the weakest from none (its
    aggregate is zero: changing every other center leaves its output the same).
  Why this and not a stock PyG layer: `GINEConv`, `TransformerConv` and `NNConv` all take
  edge features but never update them (and the last two are 2.5x and 25x slower than
  GINEConv at this size, per docs/rllib-notes.md); in GRAPE the edge features evolve with
  their end nodes, which is what the read-out below pools.
* **Ablation** (`use_graph=False`, the paper's Fig. 8b): two fully connected layers applied
  to each node independently; no message passing and no edge parameters at all.
* **Read-out.** The graph feature is a linear layer over [mean of node features, mean of
  final edge features] (node mean only in the ablation; both directions of every pair in
  two-way passing). Pooling the edges gives the last edge update a use; the edge mean of a
  graph without edges (K = 1) is zero.

Batching: the nodes are numbered b * K + i, so the B graphs form one disconnected graph; no
Python loop over the batch. One-way: the dense (B, K, K) adjacency goes through
`torch_geometric.utils.dense_to_sparse`; two-way: every ordered pair (i, j), i != j, of each
graph, in the same row-major order (`all_pairs`). Either way each graph's edges are
contiguous and as many in every graph (K(K-1)/2 or K(K-1)), as a population's layers need.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

with warnings.catch_warnings():
    # torch-geometric's import calls torch.jit.script, which torch 2.14 deprecates: noise
    # that is not ours to fix and would greet every user's first search
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    from torch_geometric.nn import MessagePassing
    from torch_geometric.utils import dense_to_sparse, scatter

from dsmnas.envs.errors import ConfigError
from dsmnas.policies.layers import TORCH_LAYERS
from dsmnas.policies.options import MESSAGE_PASSING

__all__ = ["MESSAGE_PASSING", "EdgeSAGEConv", "SubspaceGraphEncoder", "all_pairs"]



def all_pairs(batch_size: int, num_nodes: int, device=None) -> tuple[Tensor, Tensor]:
    """Every ordered pair (i, j), i != j, of B graphs of K nodes as an edge index (2, E),
    graph by graph, row-major inside a graph, nodes numbered b * K + i; and the index of
    each edge's reverse (E,)."""
    i, j = torch.nonzero(~torch.eye(num_nodes, dtype=torch.bool, device=device), as_tuple=True)
    per_graph = i.numel()
    position = torch.full((num_nodes, num_nodes), -1, dtype=torch.long, device=device)
    position[i, j] = torch.arange(per_graph, device=device)
    offsets = torch.arange(batch_size, device=device).unsqueeze(1)
    src = (i + offsets * num_nodes).reshape(-1)
    dst = (j + offsets * num_nodes).reshape(-1)
    reverse = (position[j, i] + offsets * per_graph).reshape(-1)
    return torch.stack([src, dst]), reverse


class EdgeSAGEConv(MessagePassing):
    """One GRAPE-style EdgeGraphSAGE layer: edge-aware messages, mean aggregation, edge update.

    m_ij  = relu(P [h_i, e_ij])            for each edge i -> j
    h_j'  = relu(Q [h_j, mean_i m_ij])     (no incoming edge: the aggregate is zero)
    e_ij' = relu(W [e_ij, h_i', h_j'])
    """

    def __init__(self, node_dim: int, edge_dim: int, out_dim: int, layers=TORCH_LAYERS,
                 two_way: bool = False) -> None:
        super().__init__(aggr="mean", flow="source_to_target")
        self.message_lin = layers.linear(node_dim + edge_dim * (2 if two_way else 1), out_dim)
        self.node_lin = layers.linear(node_dim + out_dim, out_dim)
        self.edge_lin = layers.linear(edge_dim + 2 * out_dim, out_dim)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor,
                reverse: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return the updated (node features (N, out_dim), edge features (E, out_dim)).
        `reverse` (two-way passing): each edge's reverse edge; its feature joins the message."""
        message_edge = edge_attr if reverse is None else torch.cat(
            [edge_attr, edge_attr[reverse]], dim=-1)
        aggregated = self.propagate(edge_index, x=x, edge_attr=message_edge)
        x_new = torch.relu(self.node_lin(torch.cat([x, aggregated], dim=-1)))
        src, dst = edge_index
        e_new = torch.relu(self.edge_lin(torch.cat([edge_attr, x_new[src], x_new[dst]], dim=-1)))
        return x_new, e_new

    def message(self, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        # PyG's x_j is the *source* node of the edge under flow="source_to_target".
        return torch.relu(self.message_lin(torch.cat([x_j, edge_attr], dim=-1)))


class SubspaceGraphEncoder(nn.Module):
    """Encode B subspace graphs of K centers into node features and one graph feature each.

    Args:
        num_positions: L, tokens per architecture.
        num_ops: C, operations per position.
        hidden_size: width of the node, edge and graph features.
        token_dim: size of the learnable vector of each (position, op) pair.
        use_graph: two EdgeSAGEConv layers over the graph (True) or two per-node fully
            connected layers (False, the paper's no-graph ablation).
        message_passing: "two-way" or "one-way" (module docstring).
        layers: where the Linear and Embedding layers come from (`policies.layers`: torch's,
            or a population's, one parameter set per search).
    """

    def __init__(
        self,
        num_positions: int,
        num_ops: int,
        hidden_size: int,
        token_dim: int,
        use_graph: bool = True,
        layers=TORCH_LAYERS,
        message_passing: str = MESSAGE_PASSING[0],
        node_features: int = 0,
    ) -> None:
        super().__init__()
        if message_passing not in MESSAGE_PASSING:
            raise ConfigError(f"unknown message_passing {message_passing!r}; allowed: "
                              f"{', '.join(MESSAGE_PASSING)}")
        self.two_way = message_passing == "two-way"
        self.num_positions = num_positions
        self.num_ops = num_ops
        self.hidden_size = hidden_size
        self.token_dim = token_dim
        self.use_graph = use_graph
        # Row l * C + c is the vector of op c at position l.
        self.token_embedding = layers.embedding(num_positions * num_ops, token_dim)
        self.register_buffer(
            "position_offsets", torch.arange(num_positions) * num_ops, persistent=False
        )
        concat_dim = num_positions * token_dim
        self.node_input = layers.linear(concat_dim + 1 + node_features, hidden_size)
        if use_graph:
            self.gnn = nn.ModuleList(
                [
                    EdgeSAGEConv(hidden_size, concat_dim, hidden_size, layers, self.two_way),
                    EdgeSAGEConv(hidden_size, hidden_size, hidden_size, layers, self.two_way),
                ]
            )
            self.readout = layers.linear(2 * hidden_size, hidden_size)
        else:
            self.node_mlp = nn.ModuleList(
                [layers.linear(hidden_size, hidden_size), layers.linear(hidden_size, hidden_size)]
            )
            self.readout = layers.linear(hidden_size, hidden_size)

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        """Per-token vectors of `tokens` (..., L) -> (..., L, token_dim)."""
        return self.token_embedding(tokens + self.position_offsets)

    def forward(self, tokens: Tensor, val_acc: Tensor, adj: Tensor,
                extra: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Encode a batch of graphs.

        Args:
            tokens: (B, K, L) int64, the centers' op indices.
            val_acc: (B, K) float, the centers' validation accuracies as fractions.
            adj: (B, K, K) float, adj[b, i, j] = 1 iff edge i -> j.
            extra: (B, K, node_features) float, more per-center inputs (DSM-NAS with several
                objectives: each center's normalised objectives and weights), or None.

        Returns:
            node features (B, K, hidden_size) and graph features (B, hidden_size).
        """
        batch_size, num_nodes, _ = tokens.shape
        concat = self.embed_tokens(tokens).flatten(-2)  # (B, K, L * token_dim)
        inputs = [concat, val_acc.unsqueeze(-1)] + ([] if extra is None else [extra])
        h = torch.relu(self.node_input(torch.cat(inputs, dim=-1)))
        if not self.use_graph:
            for layer in self.node_mlp:
                h = torch.relu(layer(h))
            return h, torch.relu(self.readout(h.mean(dim=1)))

        if self.two_way:
            edge_index, reverse = all_pairs(batch_size, num_nodes, tokens.device)
        else:
            (edge_index, _), reverse = dense_to_sparse(adj), None  # node ids b * K + i
        concat_flat = concat.reshape(batch_size * num_nodes, -1)
        src, dst = edge_index
        e = concat_flat[dst] - concat_flat[src]  # zero where the two centers agree
        x = h.reshape(batch_size * num_nodes, -1)
        for layer in self.gnn:
            x, e = layer(x, edge_index, e, reverse)
        h = x.view(batch_size, num_nodes, -1)
        edge_mean = scatter(
            e, torch.div(src, num_nodes, rounding_mode="floor"), dim=0,
            dim_size=batch_size, reduce="mean",
        )
        graph = torch.relu(self.readout(torch.cat([h.mean(dim=1), edge_mean], dim=-1)))
        return h, graph
