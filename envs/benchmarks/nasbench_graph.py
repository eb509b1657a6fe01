"""NAS-Bench-Graph's tabular data: the PyPI package `nas-bench-graph` (Apache-2.0), offline.

`nas_bench_graph.light_read(name)` unpickles `light/<name>.bench`, a dict from the package's
architecture hash (`envs.spaces.nasbench_graph.NASBenchGraphSpace.key`) to `valid_perf`,
`perf` (test), `latency` and `para` (parameters, millions). Nine datasets: cora, citeseer,
pubmed, cs, physics, photo, computers and arxiv (26,206 architectures each, all nine
operations) and proteins (2,021, five operations: its own space, `nasbench-graph-proteins`).
A dataset is read once per process, on first use; only its name travels to Ray workers.

Reward: `valid_perf` in percent (x100, like the other spaces' accuracies). `report` gives
`perf`, the test score, for reports only. Metrics (limitable): `latency_s`, `params_m`. The
light files have no training time, so the budget counts queries (every answered query
charged, repeats included, unless `cache_queries`; isomorphic vectors are one key).

Defaults: K = 4, M = 3, 200 queries (proteins: 50); how they were chosen: README,
"NAS-Bench-Graph", and `benchmarks/bench_nasbench_graph_budget.py`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from dsmnas.envs.benchmarks.base import Benchmark, Metric
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.objectives import ObjectiveScale
from dsmnas.envs.registry import SpaceSpec
from dsmnas.envs.spaces.nasbench_graph import NASBenchGraphProteinsSpace, NASBenchGraphSpace

DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv")
"""The datasets with all nine operations (space `nasbench-graph`)."""
PROTEINS = "proteins"
"""The dataset with five operations (space `nasbench-graph-proteins`)."""
DEFAULT_BUDGET_QUERIES = 200
PROTEINS_BUDGET_QUERIES = 50
"""Default budgets (charged queries): how they were chosen is in the README."""
METRICS = {
    "latency_s": Metric("seconds", "inference latency measured by NAS-Bench-Graph"),
    "params_m": Metric("million parameters", "model size"),
}
_KEYS = 10 ** 5
"""Dense arrays cover every hash the package can produce (at most 88,888)."""


@dataclass(frozen=True)
class NASBenchGraphData:
    """One dataset's light file as dense arrays indexed by the package's hash (NaN where
    there is no entry)."""

    dataset: str
    val_perf: np.ndarray
    test_perf: np.ndarray
    latency_s: np.ndarray
    params_m: np.ndarray
    entries: int


@functools.lru_cache(maxsize=None)
def load_nasbench_graph(dataset: str) -> NASBenchGraphData:
    """The light file of `dataset` (one of DATASETS or PROTEINS), read once per process."""
    from nas_bench_graph import light_read

    if dataset not in (*DATASETS, PROTEINS):
        raise ConfigError(
            f"unknown NAS-Bench-Graph dataset {dataset!r}; allowed: {', '.join((*DATASETS, PROTEINS))}"
        )
    raw = light_read(dataset)
    keys = np.fromiter(raw, dtype=np.int64, count=len(raw))
    columns = {}
    for name in ("valid_perf", "perf", "latency", "para"):
        arr = np.full(_KEYS, np.nan)
        arr[keys] = [float(entry[name]) for entry in raw.values()]
        columns[name] = arr
    return NASBenchGraphData(
        dataset=dataset, val_perf=columns["valid_perf"], test_perf=columns["perf"],
        latency_s=columns["latency"], params_m=columns["para"], entries=len(raw),
    )


class NASBenchGraphBenchmark(Benchmark):
    """Queries of one NAS-Bench-Graph dataset (a budget of queries: each costs 0 s)."""

    val_metric = "valid_perf"
    acc_scale = 100.0
    metrics = METRICS

    def __init__(self, space: NASBenchGraphSpace, dataset: str):
        allowed = (PROTEINS,) if isinstance(space, NASBenchGraphProteinsSpace) else DATASETS
        if dataset not in allowed:
            if dataset == PROTEINS:
                hint = "; proteins has five operations of its own: --space nasbench-graph-proteins"
            elif dataset in DATASETS:
                hint = f"; {dataset} has all nine operations: --space nasbench-graph"
            else:
                hint = ""
            raise ConfigError(
                f"unknown dataset {dataset!r} for the {space.name} space; allowed: "
                f"{', '.join(allowed)}{hint}"
            )
        self.space = space
        self.dataset = dataset
        self.data = load_nasbench_graph(dataset)
        self.source = f"nas-bench-graph {_version()}:{dataset}"

    def _key(self, tokens: np.ndarray) -> int:
        key = self.space.key(tokens)
        if np.isnan(self.data.val_perf[key]):
            raise ConfigError(
                f"{self.space.format(tokens)} has no entry in NAS-Bench-Graph {self.dataset} "
                f"(the all-skip architectures have none)"
            )
        return key

    def _val(self, tokens: np.ndarray) -> float:
        return 100.0 * float(self.data.val_perf[self._key(tokens)])

    def cost_s(self, tokens: np.ndarray) -> float:
        return 0.0

    def report(self, tokens: np.ndarray) -> dict[str, float]:
        return {self.dataset: 100.0 * float(self.data.test_perf[self._key(tokens)])}

    def metric(self, name: str, tokens: np.ndarray) -> float:
        if name not in METRICS:
            return super().metric(name, tokens)
        return float(getattr(self.data, name)[self._key(tokens)])


@functools.lru_cache(maxsize=1)
def _version() -> str:
    try:
        return metadata.version("nas-bench-graph")
    except metadata.PackageNotFoundError:  # imported from a source tree
        return "unknown version"


def objective_scale(benchmark: NASBenchGraphBenchmark) -> ObjectiveScale:
    """NAS-Bench-Graph's fixed normalisation for `--objectives`: the validation score in %
    over (0, 100), i.e. the error (100 - score) / 100; latency_s and params_m over (0, their
    largest value in the dataset's file). Every architecture of the dataset is in the file:
    the true front is known (IGD+)."""
    data = benchmark.data
    bounds = {"val_acc": (0.0, benchmark.acc_scale),
              **{name: (0.0, float(np.nanmax(getattr(data, name)))) for name in METRICS}}

    def every() -> dict[str, np.ndarray]:
        return {"val_acc": benchmark.acc_scale * data.val_perf,
                **{name: getattr(data, name) for name in METRICS}}

    return ObjectiveScale(bounds, every)


def _make(space_class):
    def make(cfg) -> NASBenchGraphBenchmark:
        return NASBenchGraphBenchmark(space_class(), cfg.dataset)
    return make


_DEFAULTS = {"K": 4, "M": 3}
SPEC = SpaceSpec(
    name="nasbench-graph",
    space=NASBenchGraphSpace,
    benchmark=_make(NASBenchGraphSpace),
    env_defaults={"dataset": "cora", "budget_queries": DEFAULT_BUDGET_QUERIES, **_DEFAULTS},
    budget="queries",
    objectives=objective_scale,
    description="NAS-Bench-Graph (PyPI nas-bench-graph: 26,206 GNN architectures on cora, "
                "citeseer, pubmed, cs, physics, photo, computers, arxiv)",
)
PROTEINS_SPEC = SpaceSpec(
    name="nasbench-graph-proteins",
    space=NASBenchGraphProteinsSpace,
    benchmark=_make(NASBenchGraphProteinsSpace),
    env_defaults={"dataset": PROTEINS, "budget_queries": PROTEINS_BUDGET_QUERIES, **_DEFAULTS},
    budget="queries",
    objectives=objective_scale,
    description="NAS-Bench-Graph's proteins data (2,021 GNN architectures of five operations)",
)
