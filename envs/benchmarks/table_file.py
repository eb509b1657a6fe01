"""Your own table as a search space: `--space table:FILE`.

One row per architecture, in a CSV (`.csv`, `.csv.gz`) or parquet file:

- one column per position (the architecture's choices; any values, read as text);
- the reward column (a validation metric, higher is better), default `val_acc`;
- optional: a cost column (simulated seconds per query: the budget is then in simulated
  seconds, else in queries), test columns (reported for the answer, never searched on), and
  metric columns (per-architecture numbers that `--limit METRIC=VALUE` can constrain).

Which column is which is said by a small YAML file beside the table (`mytable.yaml` for
`mytable.csv`), every key optional:

```yaml
positions: [op1, op2, op3]   # default: every column not named below
reward: val_acc              # default: val_acc
cost: train_time_s           # default: none (a budget of queries)
test: [test_acc]             # default: every column whose name starts with test_
metrics: [params_m]          # default: none
budget: 100                  # default: 100 queries, or 100 x the median cost in seconds
K: 4                         # defaults of the env: K (4), M (2, at most the positions)
M: 2
```

The space is inferred from the file: position p's choices are its column's distinct values
(sorted), an architecture is valid only if its row is present, and the text form is the
values joined by `|` (`relu|64|0.3`). An edit that would leave the table is not made (the
position keeps its value), so every action of DSMNAS-v0 gives a present row. Malformed files
(missing columns, duplicate architectures, non-numeric or missing rewards) are refused with
one `ConfigError` naming what is wrong.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dsmnas.envs.benchmarks.base import Benchmark, Metric
from dsmnas.envs.errors import ConfigError, MissingFileError
from dsmnas.envs.registry import SpaceSpec
from dsmnas.envs.spaces.base import TOKEN_DTYPE, SearchSpace

SCHEME = "table:"
SUFFIXES = (".csv", ".csv.gz", ".parquet")
FORMAT_KEYS = ("positions", "reward", "cost", "test", "metrics", "budget", "K", "M")
DEFAULT_QUERIES = 100


@dataclass(frozen=True)
class TableData:
    """A table read and checked: its positions, choices, tokens and numbers, by row."""

    path: str
    positions: tuple[str, ...]
    choices: tuple[tuple[str, ...], ...]
    tokens: np.ndarray
    """(rows, L) token of every row."""
    reward: str
    val: np.ndarray
    cost: np.ndarray | None
    test: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    budget: float | int
    K: int
    M: int


def _stem(path: Path) -> Path:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path.with_suffix("")


def read_format(path: Path) -> dict[str, Any]:
    """The YAML beside the table ({} when there is none), keys checked."""
    side = _stem(path).with_suffix(".yaml")
    if not side.exists():
        return {}
    try:
        values = yaml.safe_load(side.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"table format {str(side)!r} is not valid YAML") from None
    if not isinstance(values, dict):
        raise ConfigError(f"table format {str(side)!r} must be a mapping of keys to values")
    unknown = sorted(map(str, set(values) - set(FORMAT_KEYS)))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {str(side)!r}; allowed: {', '.join(FORMAT_KEYS)}")
    return values


def _names(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"table format key {key!r} must be a column name or a list of them")
    return list(items)


@functools.lru_cache(maxsize=8)
def load_table(path: str, _mtime_ns: int = 0) -> TableData:
    """Read and check the table at `path` and its format (cached per path and mtime)."""
    import pandas as pd  # here, so that the CLI's help needs no pandas

    p = Path(path)
    fmt = read_format(p)
    try:
        frame = pd.read_parquet(p) if p.name.endswith(".parquet") else pd.read_csv(p)
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as e:
        raise ConfigError(f"table {path!r} is not readable: {type(e).__name__}: {e}") from None
    reward = fmt.get("reward", "val_acc")
    cost = fmt.get("cost")
    tests = _names(fmt["test"], "test") if "test" in fmt else [
        c for c in frame.columns if str(c).startswith("test_")]
    metrics = _names(fmt.get("metrics"), "metrics")
    named = [reward, *([cost] if cost else []), *tests, *metrics]
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"table {path!r} lacks the column(s) {missing} (columns: {', '.join(map(str, frame.columns))})")
    positions = _names(fmt.get("positions"), "positions") or [
        c for c in frame.columns if c not in named]
    missing = [c for c in positions if c not in frame.columns]
    if missing:
        raise ConfigError(f"table {path!r} lacks the position column(s) {missing}")
    if not positions:
        raise ConfigError(f"table {path!r} has no position columns besides {named}")
    if len(frame) < 2:
        raise ConfigError(f"table {path!r} has {len(frame)} row(s); a search needs at least 2")
    cells = frame[positions].astype(str)
    bad = [c for c in positions if cells[c].str.contains("|", regex=False).any()]
    if bad:
        raise ConfigError(f"table {path!r}: values of {bad} contain '|', which the text form uses")
    dup = cells.duplicated(keep=False)
    if dup.any():
        first = "|".join(cells[dup].iloc[0])
        raise ConfigError(
            f"table {path!r} has {int(dup.sum())} rows for repeated architectures, e.g. {first!r}: "
            f"one row per architecture")
    numbers = {}
    for column in named:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna())[0])
            value = frame[column].iloc[row]
            what = "a missing value" if pd.isna(value) else f"a non-numeric value {value!r}"
            raise ConfigError(
                f"table {path!r}: column {column!r} has {what} (row {row + 2} of the file)")
        numbers[column] = values.to_numpy(dtype=float)
    choices = tuple(tuple(sorted(cells[c].unique())) for c in positions)
    tokens = np.stack([cells[c].map({v: i for i, v in enumerate(ch)}).to_numpy(dtype=TOKEN_DTYPE)
                       for c, ch in zip(positions, choices)], axis=1)
    cost_s = numbers.get(cost) if cost else None
    if cost_s is not None and (cost_s < 0).any():
        raise ConfigError(f"table {path!r}: cost column {cost!r} has negative values")
    default_budget = (DEFAULT_QUERIES * float(np.median(cost_s)) if cost_s is not None
                      else DEFAULT_QUERIES)
    L = len(positions)
    return TableData(
        path=path, positions=tuple(positions), choices=choices, tokens=tokens, reward=reward,
        val=numbers[reward], cost=cost_s, test={t: numbers[t] for t in tests},
        metrics={m: numbers[m] for m in metrics}, budget=fmt.get("budget", default_budget),
        K=int(fmt.get("K", 4)), M=int(fmt.get("M", min(2, L))),
    )


class TableSpace(SearchSpace):
    """The architectures of a table: L positions with their columns' values; valid = present."""

    dense = False

    def __init__(self, data: TableData):
        self.data = data
        self.name = f"table:{Path(data.path).name}"
        self.L = len(data.positions)
        self.C = max(len(c) for c in data.choices)
        self._mask = np.zeros((self.L, self.C), dtype=np.float32)
        for p, ch in enumerate(data.choices):
            self._mask[p, : len(ch)] = 1.0
        self._rows = {self.key(t): i for i, t in enumerate(data.tokens)}

    def row(self, tokens: np.ndarray) -> int | None:
        """The row of `tokens` in the table (None: not present)."""
        return self._rows.get(self.key(tokens))

    def parse(self, text: str) -> np.ndarray:
        values = str(text).split("|")
        if len(values) != self.L:
            raise ConfigError(
                f"not an architecture of {self.name}: {text!r}; expected {self.L} values joined "
                f"by '|' for the columns {list(self.data.positions)}")
        try:
            tokens = np.array([ch.index(v) for v, ch in zip(values, self.data.choices)],
                              dtype=TOKEN_DTYPE)
        except ValueError:
            raise ConfigError(f"{text!r} has a value that column of {self.name} never takes") from None
        return self.validate(tokens)

    def format(self, tokens: np.ndarray) -> str:
        return "|".join(ch[int(t)] for t, ch in zip(tokens, self.data.choices))

    def op_mask(self) -> np.ndarray:
        return self._mask.copy()

    def is_valid(self, tokens: np.ndarray) -> bool:
        return super().is_valid(tokens) and self.row(tokens) is not None

    def validate(self, tokens) -> np.ndarray:
        t = np.asarray(tokens)
        if not self.is_valid(t):
            raise ConfigError(f"{t.tolist()} is not a row of {self.name}")
        return t.astype(TOKEN_DTYPE)

    def apply_edits(self, tokens: np.ndarray, edits) -> np.ndarray:
        """As `SearchSpace.apply_edits`, but an edit that would give an architecture the table
        does not have is not made (the position keeps its value)."""
        beta = np.array(tokens, dtype=TOKEN_DTYPE, copy=True)
        for position, op in edits:
            if self._mask[position, op] and beta[position] != op:
                old, beta[position] = beta[position], op
                if self.row(beta) is None:
                    beta[position] = old
        return beta

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A row drawn uniformly."""
        return self.data.tokens[int(rng.integers(len(self.data.tokens)))].copy()


class TableBenchmark(Benchmark):
    """Queries of one table: reward, cost (0 without a cost column), test for reports."""

    def __init__(self, space: TableSpace):
        d = space.data
        self.space, self.data = space, d
        self.dataset = _stem(Path(d.path)).name
        self.source = f"table:{d.path}"
        self.val_metric = d.reward
        self.metrics = {m: Metric(f"column {m!r} of the table") for m in d.metrics}

    def _row(self, tokens: np.ndarray) -> int:
        row = self.space.row(tokens)
        if row is None:
            raise ConfigError(f"{self.space.format(tokens)!r} is not a row of {self.space.name}")
        return row

    _key = _row  # the clock knows an architecture by its row

    def _val(self, tokens: np.ndarray) -> float:
        return float(self.data.val[self._row(tokens)])

    def cost_s(self, tokens: np.ndarray) -> float:
        return 0.0 if self.data.cost is None else float(self.data.cost[self._row(tokens)])

    def report(self, tokens: np.ndarray) -> dict[str, float]:
        i = self._row(tokens)
        return {name: float(v[i]) for name, v in self.data.test.items()}

    def metric(self, name: str, tokens: np.ndarray) -> float:
        if name not in self.data.metrics:
            return super().metric(name, tokens)
        return float(self.data.metrics[name][self._row(tokens)])


def _benchmark(space: TableSpace, cfg) -> TableBenchmark:
    bench = TableBenchmark(space)
    if cfg.dataset != bench.dataset:
        raise ConfigError(f"{space.name} has one dataset, {bench.dataset!r}; got {cfg.dataset!r}")
    return bench


def spec_for(name: str) -> SpaceSpec:
    """The `SpaceSpec` of `table:PATH` (PATH absolute: see `envs.registry.normalize`)."""
    path = name[len(SCHEME):]
    if not os.path.isfile(path):
        raise MissingFileError(f"table {path!r} does not exist (--space table:FILE)")
    if not path.endswith(SUFFIXES):
        raise ConfigError(f"table {path!r}: expected a {', '.join(SUFFIXES)} file")
    return _spec(name, path, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _spec(name: str, path: str, mtime_ns: int) -> SpaceSpec:
    data = load_table(path, mtime_ns)
    space = TableSpace(data)
    seconds = data.cost is not None
    return SpaceSpec(
        name=name,
        space=lambda: space,
        benchmark=lambda cfg: _benchmark(space, cfg),
        env_defaults={"K": data.K, "M": data.M, "dataset": _stem(Path(path)).name,
                      ("budget_s" if seconds else "budget_queries"):
                          float(data.budget) if seconds else int(data.budget)},
        budget="seconds" if seconds else "queries",
        description=f"your table {path}",
    )
