"""`reinforce`: the NAS-Bench-201 paper's RL baseline (REINFORCE, Williams 1992), pure torch.

What it follows: NAS-Bench-201's released `exps/NAS-Bench-201-algos/reinforce.py`
(AutoDL-Projects). That code's controller is NOT an LSTM: it is one learnable logit per
(edge, op), initialised as 1e-3 * N(0, 1), softmax per edge, every edge sampled
independently (`controller="table"`, the default here). Per query (batch size 1):
1. sample a whole architecture from the controller (op-masked), query it; the reward is
   the validation accuracy as the benchmark gives it (percent, unscaled);
2. update the baseline first, then use it: b is the bias-corrected exponential moving
   average of the rewards, num = m*num + (1-m)*R, den = m*den + (1-m), b = num/den, with
   momentum m = 0.9 (`EMA_momentum 0.9` in every released script), so the first step's
   advantage is 0;
3. loss = -(R - b) * (sum of the L log-probabilities); one Adam step (no entropy term, no
   weight decay, as released).
The answer is the best queried architecture by validation accuracy (the released code's
final version, `max(trace)`; its first version took the controller's argmax instead).
Learning rate: the released sources disagree (the usage line of `REINFORCE.sh` says 0.001;
the reproduction command in `docs/NAS-Bench-201.md` passes 0.5, the top of the grid
`hps/GRID-RL.sh` = 0.01 ... 0.5; NATS-Bench's `run-all.sh`, the same author's upgrade of these
baselines, uses 0.01). The default is 0.01: at 0.5 Adam moves each logit by ~0.5 per query and
the policy collapses within a few dozen queries (on the NB201 table at 25,000 s, only 12% of
the queries were distinct architectures, repeats being charged), which does not match the
paper's spread of results; at 0.01, 99% are distinct.

`controller="lstm"` is the variant the issue describes (Zoph & Le / ENAS style): an LSTM
cell emits one op per position, each conditioned on the previous ones through the input
embedding of the op just chosen; per-position linear heads. Its default lr is 1e-3: its
shared weights move every position at once, and at 1e-2 it concentrated on a few
architectures (24% of queries distinct, against 98% at 1e-3).

History columns: `reward` (= val_acc) and `baseline` (b used for that query's update).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dsmnas.envs import EnvConfig
from dsmnas.envs.benchmarks import Benchmark
from dsmnas.trainables.search import SearchResult
from dsmnas.trainables.searchers.base import Progress, QueryLog, make_rng, parse_settings
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import setting

CONTROLLERS = ("table", "lstm")
DEFAULT_LR = {"table": 1e-2, "lstm": 1e-3}


@dataclass(frozen=True)
class ReinforceSettings:
    controller: str = setting(
        "table", "'table': NAS-Bench-201's released policy (independent per-position logits); "
        "'lstm': an autoregressive LSTM controller")
    lr: float | None = setting(
        None, "Adam learning rate (default: 1e-2 for 'table', as NATS-Bench; 1e-3 for 'lstm')")
    ema_momentum: float = setting(
        0.9, "momentum of the reward's moving-average baseline (NAS-Bench-201: 0.9)")
    hidden: int = setting(64, "LSTM hidden and embedding size ('lstm' only)")

    def __post_init__(self):
        if self.controller not in CONTROLLERS:
            raise ConfigError(
                f"unknown reinforce controller {self.controller!r}; allowed: {', '.join(CONTROLLERS)}"
            )
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"reinforce lr must be > 0, got {self.lr!r}")
        if not 0 <= self.ema_momentum < 1:
            raise ConfigError(f"reinforce ema_momentum must be in [0, 1), got {self.ema_momentum!r}")
        if not (isinstance(self.hidden, int) and self.hidden >= 1):
            raise ConfigError(f"reinforce hidden must be an integer >= 1, got {self.hidden!r}")

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.controller] if self.lr is None else self.lr


class TableController(nn.Module):
    """NAS-Bench-201's policy: an (L, C) table of logits; positions independent."""

    def __init__(self, L: int, C: int):
        super().__init__()
        self.logits = nn.Parameter(1e-3 * torch.randn(L, C))

    def sample(self, mask: torch.Tensor, gen: torch.Generator) -> tuple[np.ndarray, torch.Tensor]:
        logp = torch.log_softmax(self.logits.masked_fill(~mask, -torch.inf), dim=-1)
        ops = torch.multinomial(logp.exp(), 1, generator=gen).squeeze(1)
        return ops.numpy(), logp.gather(1, ops[:, None]).sum()


class LSTMController(nn.Module):
    """One LSTM step per position; the input is the embedding of the previous op (a learned
    start token first); a linear head per position gives that position's logits."""

    def __init__(self, L: int, C: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(C + 1, hidden)  # index C: start token
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, C) for _ in range(L))
        self.C = C

    def sample(self, mask: torch.Tensor, gen: torch.Generator) -> tuple[np.ndarray, torch.Tensor]:
        x = self.embed(torch.tensor([self.C]))
        state = None
        ops, total = [], torch.zeros(())
        for p, head in enumerate(self.heads):
            state = self.cell(x, state)
            logp = torch.log_softmax(head(state[0])[0].masked_fill(~mask[p], -torch.inf), -1)
            op = torch.multinomial(logp.exp(), 1, generator=gen)
            total = total + logp[op[0]]
            ops.append(int(op))
            x = self.embed(op)
        return np.array(ops), total


def check_reinforce(env_config: EnvConfig, settings: dict[str, Any] | None = None) -> None:
    """The controller draws every position from the op mask: the space must be dense."""
    from dsmnas.envs.registry import get_space

    if not get_space(env_config.space).dense:
        raise ConfigError(
            f"reinforce samples every position from the op mask, which gives architectures "
            f"{env_config.spec.name} does not list (a space that is not dense)"
        )


def run_reinforce(
    env_config: EnvConfig,
    settings: dict[str, Any],
    progress: Progress = None,
    *,
    benchmark: Benchmark | None = None,
) -> SearchResult:
    """One REINFORCE search (settings: `ReinforceSettings`)."""
    (s,) = parse_settings("reinforce", settings, ReinforceSettings)
    check_reinforce(env_config)
    log = QueryLog(env_config, "reinforce", s, progress, benchmark)
    init_seed, sample_seed = (int(x) for x in make_rng(env_config.seed).integers(2**62, size=2))
    L, C = log.space.L, log.space.C
    # Parameter init draws from torch's global RNG: fork it so that only the seed matters
    # and the caller's RNG state is left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        policy = TableController(L, C) if s.controller == "table" else LSTMController(L, C, s.hidden)
    gen = torch.Generator().manual_seed(sample_seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=s.learning_rate)
    mask = torch.as_tensor(log.space.op_mask() > 0)
    # The tensors are tiny: on a busy machine, waking intra-op threads costs ~100x the math.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _search(log, policy, optimizer, mask, gen, s.ema_momentum)
    finally:
        torch.set_num_threads(threads)
    return log.result()


def _search(log: QueryLog, policy: nn.Module, optimizer, mask, gen, momentum: float) -> None:
    num = den = 0.0
    while True:
        ops, logp = policy.sample(mask, gen)
        tokens = log.space.canonical(ops.astype(np.int64))
        q = log.benchmark.query(tokens)
        if q is None:
            break
        reward = q.val_acc
        num = momentum * num + (1 - momentum) * reward
        den = momentum * den + (1 - momentum)
        baseline = num / den
        loss = -(reward - baseline) * logp
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log.record(tokens, q.val_acc, q.cost_s, reward=reward, baseline=baseline)
