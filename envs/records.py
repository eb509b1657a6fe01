"""One query's record: the row of every history (env, searchers, checkpoints, comparisons).

`history.csv`'s columns are `HISTORY_COLUMNS`, then the benchmark's per-query metrics (e.g.
`macs_m` in the MobileNet-like space, any limited metric), then the method's own columns in the
order they first appear (e.g. evolution's `parent`, random-mined's `phase`). A field that does
not apply to a method (a baseline has no `subspace`) is left empty (NaN in the frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:  # pandas is imported where a frame is made: the CLI's help needs none
    import pandas as pd

HISTORY_COLUMNS = (
    "step", "subspace", "arch", "val_acc", "reward", "accepted", "cost_s", "sim_time_s",
)


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One answered query."""

    step: int
    """Index of the query in the search (0-based)."""
    arch: str
    """The queried architecture's text form."""
    val_acc: float
    """The reward metric's value (validation accuracy, never test)."""
    cost_s: float
    """Simulated seconds charged for it (0 for a repeat served by the cache)."""
    sim_time_s: float
    """The budget clock after it."""
    subspace: int | None = None
    reward: float | None = None
    accepted: bool | None = None
    """DSM-NAS's fields: the subspace chosen, the reward given, whether beta became its center."""
    metrics: tuple[tuple[str, float], ...] = ()
    """The benchmark's per-query metrics, (name, value) in the benchmark's order."""
    extra: tuple[tuple[str, Any], ...] = ()
    """The method's own columns, (name, value)."""

    def row(self) -> dict[str, Any]:
        """The history row: fields that apply (None left out), metrics, extras."""
        d = {c: getattr(self, c) for c in HISTORY_COLUMNS if getattr(self, c) is not None}
        d.update(self.metrics)
        d.update(self.extra)
        return d

    @classmethod
    def from_row(cls, row: Sequence[Any], columns: Sequence[str]) -> "QueryRecord":
        """A record from a positional row with `columns` (the env's history rows before 0.3)."""
        values = dict(zip(columns, row))
        base = {c: values.pop(c) for c in HISTORY_COLUMNS if c in values}
        return cls(**base, metrics=tuple(values.items()))


def history_frame(records: Iterable[QueryRecord], metrics: Sequence[str] = ()) -> pd.DataFrame:
    """The history of `records`: `HISTORY_COLUMNS`, `metrics`, then the extras."""
    import pandas as pd

    rows = [r.row() for r in records]
    known = {*HISTORY_COLUMNS, *metrics}
    extra = dict.fromkeys(c for row in rows for c in row if c not in known)
    return pd.DataFrame(rows, columns=[*HISTORY_COLUMNS, *metrics, *extra])
