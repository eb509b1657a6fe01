"""DSM-NAS's learner settings: the one home of the REINFORCE defaults (the paper's, NAS-Bench-201).

`LearnerSettings` is what `dsmnas search`, `--set dsm.KEY=VALUE` and a sweep's `dsm.` items
set; `trainables.reinforce.REINFORCEConfig` and `reinforce_config` take their defaults from it,
and a space's `SpaceSpec.learner_defaults` (mobilenet: lr 3e-4, entropy 1e-3) replaces the
fields it names. Light on purpose (no RLlib import): the CLI reads it to build its help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import setting

from dsmnas.policies.options import MESSAGE_PASSING  # light: no torch


@dataclass(frozen=True)
class LearnerSettings:
    """REINFORCE settings; defaults are the paper's for NAS-Bench-201."""

    lr: float = setting(1e-2, "Adam learning rate (a space may set its own: mobilenet 3e-4, "
                        "the paper's)")
    entropy: float = setting(7.5e-4, "entropy weight (lambda; mobilenet 1e-3, the paper's)")
    baseline_decay: float = setting(0.9, "decay of the reward's moving-average baseline")
    weight_decay: float = setting(0.0, "Adam weight decay")
    batch_size: int = setting(1, "environment steps (queries) per policy update")
    use_graph: bool = setting(True, "GNN over the subspace graph (off: per-node FC, Fig. 8b)",
                              flag="--no-graph")
    message_passing: str = setting(
        "two-way", "the GNN's messages: two-way (the official code's: each center hears from "
        "all K-1 others) or one-way (weaker -> better only; dsm-oneway)")
    mask_noop_edits: bool = setting(
        False, "never pick the op the center already has at the edited position (dsm-nonoop)"
    )

    def __post_init__(self):
        for name, ok, what in (
            ("lr", lambda v: v > 0, "a number > 0"),
            ("entropy", lambda v: v >= 0, "a number >= 0"),
            ("baseline_decay", lambda v: 0 <= v < 1, "a number in [0, 1)"),
            ("weight_decay", lambda v: v >= 0, "a number >= 0"),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
                raise ConfigError(f"{name} must be {what}, got {v!r}")
        if self.message_passing not in MESSAGE_PASSING:
            raise ConfigError(f"message_passing must be one of {', '.join(MESSAGE_PASSING)}, "
                              f"got {self.message_passing!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")


def population_refusal(env_config, settings: dict[str, Any]) -> str | None:
    """Why `dsm` with `settings` (a `LearnerSettings` dict) on `env_config` does not run as a
    population (None: it does): batch size > 1, or a supernet evaluated in-process (each
    member would hold its own supernet, and its queries would be no cheaper together)."""
    if settings.get("batch_size", 1) != 1:
        return f"batch_size {settings['batch_size']!r}: population mode is for batch size 1"
    evaluator = dict(env_config.options).get("evaluator")
    if evaluator == "supernet":
        return "evaluator 'supernet': population mode is for tabular and predicted rewards"
    return None
