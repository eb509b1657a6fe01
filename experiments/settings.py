"""The commands' own settings, what a comparison, an ablation or a sweep is made of.

`SearchCommand`, `EvaluatorSettings`, `FitPredictorSettings`, `TrainSupernetCommand` (the
flags of `search`, the evaluator actors, `fit-predictor` and `train-supernet` that are not
settings of the env, the learner or a space), `RunSettings` (the flags and sweep-file keys
that compare, ablate and sweep share), `CompareSettings`, `MethodSpec` (one compared
variant), `SweepSettings` (a sweep's keys), `Config` and `LogUniform` (a swept configuration, a swept range) and the catalogue of the paper's ablations. Every
flag is made from these fields by `experiments.flags`. Light on purpose (no pandas, plotting, Ray or torch): `dsmnas CMD
--help` reads this module and nothing heavier, and answers at once. Running and reporting
are `experiments.plan`, `experiments.compare`, `experiments.recorder`, `experiments.sweep`,
`experiments.ablate` and `experiments.report`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dsmnas.envs.config import EnvConfig
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import setting


TEST_PREFIX = "test_acc_"
"""runs.csv's test accuracy columns: `test_acc_<dataset>` (reports only)."""
VISITED_PREFIX = "best_visited_"
"""Prefix of the best visited architecture's columns: `best_visited_arch`,
`best_visited_val_acc`, `best_visited_test_acc_<dataset>`."""
OK, FAILED, STOPPED = "ok", "failed", "stopped"
"""A run's status in runs.csv (stopped: by a sweep's scheduler, before its budget's end)."""


@dataclass(frozen=True)
class SearchCommand:
    """What `dsmnas search` writes and prints (the env's and the learner's settings are
    `EnvConfig`'s and `LearnerSettings`')."""

    out: str | None = setting(
        None, "output folder for result.json and history.csv (default: runs/search-<time>)")
    checkpoint_every: int = setting(
        25, "save the search's full state to OUT/checkpoint/ every N queries (at the first "
        "RLlib iteration end past each multiple, up to 16 queries later), for `dsmnas resume "
        "OUT`; 0: never", metavar="N")
    quiet: bool = setting(False, "no progress lines")
    address: str | None = setting(
        None, "address of a running Ray cluster for the evaluator actors (e.g. auto or "
        "HOST:6379); default: a local Ray (the search itself runs in this process)")

    def __post_init__(self):
        if self.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be >= 0 queries, got {self.checkpoint_every}")


@dataclass(frozen=True)
class EvaluatorSettings:
    """Supernet evaluator actors (search, fit-predictor, compare, ablate, sweep; the latter
    three take the checkpoint as --set env.checkpoint=PATH)."""

    evaluator_actors: int = setting(
        0, "serve the supernet from N Ray actors, started once by this command and shared by "
        "all its searches (GPUs when the cluster has them, else CPUs; 0: evaluate in-process)",
        metavar="N")
    gpus_per_evaluator: float | None = setting(
        None, "GPUs per evaluator actor, fractions allowed (default: the cluster's GPUs shared "
        "evenly)", metavar="G")
    evaluator_wait: float = setting(
        600.0, "on a cluster joined with --address that has no node with the resource "
        "supernet_evaluator yet, ask its autoscaler for one and wait up to this many seconds "
        "(a GPU node may take minutes to boot); 0: place the actors on the nodes there are",
        metavar="SECONDS")

    def __post_init__(self):
        if not self.evaluator_wait >= 0:
            raise ConfigError(f"--evaluator-wait must be >= 0 seconds, got {self.evaluator_wait}")


@dataclass(frozen=True)
class FitPredictorSettings:
    """`dsmnas fit-predictor`: score seeded random subnets with a supernet, fit an MLP."""

    checkpoint: str = setting(dataclasses.MISSING, "supernet checkpoint (`dsmnas train-supernet`)",
                              metavar="PATH")
    out: str = setting(dataclasses.MISSING, "the predictor file to write", metavar="PATH")
    data: str | None = setting(None, "images to score on (default: the checkpoint's)")
    samples: int = setting(2000, "subnets scored")
    epochs: int = setting(300, "MLP training epochs")
    seed: int = setting(0, "seed of the samples and the fit")


@dataclass(frozen=True)
class TrainSupernetCommand:
    """`dsmnas train-supernet`'s flags beside the training settings (`SupernetTrainSettings`)."""

    out: str | None = setting(None, "output folder (default: runs/supernet-<time>)")
    threads: int | None = setting(
        None, "torch CPU threads (default: torch's; 1 is faster on a busy machine)")
    resume: bool = setting(False, "continue OUT/supernet.pt")
    quiet: bool = setting(False, "no progress lines")

    def __post_init__(self):
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.resume and not self.out:
            raise ConfigError("--resume needs --out, the folder of the run to continue")


@dataclass(frozen=True)
class RunSettings:
    """How a comparison, an ablation or a sweep runs: their shared flags and sweep-file keys."""

    seeds: int = setting(10, "runs per method (per configuration in a sweep)")
    first_seed: int = setting(0, "seeds are first_seed .. first_seed+seeds-1")
    out: str | None = setting(None, "output folder (default: runs/<command>-<time>)")
    address: str | None = setting(
        None, "address of a running Ray cluster (e.g. auto or HOST:6379); default: start a "
        "local Ray")
    max_concurrent: int | None = setting(
        None, "most trials at once (default: as the resources allow)")
    retries: int = setting(2, "times a failed run is retried before it counts as failed")
    population: int = setting(
        50, "searches of one method that run as one batch in one trial (population mode), "
        "for methods that support it (dsm and its variants at batch size 1); the seeds are "
        "split into equal contiguous groups of at most this many; 1: one search per trial")
    set: tuple[str, ...] = setting(
        (), "METHOD.KEY=VALUE (a setting of one method, e.g. dsm.lr=0.02; METHOD.env.KEY=VALUE "
        "its env), or env.KEY=VALUE (every run's env, e.g. env.K=8); a sweep takes env. and "
        "dsm. items", metavar="METHOD.KEY=VALUE", repeat=True)
    trackers: tuple[str, ...] = setting(
        (), "also log every trial's reports, offline, to an experiment tracker: mlflow "
        "(OUT/mlflow.db) or wandb (OUT/wandb/); repeatable or comma-separated; each is an "
        "optional extra (pip install 'dsmnas[mlflow]')", flag="--tracker", metavar="NAME",
        repeat=True)

    def __post_init__(self):
        from dsmnas.experiments.trackers import parse_trackers

        object.__setattr__(self, "trackers", parse_trackers(self.trackers))


@dataclass(frozen=True)
class RunCommand:
    """compare's, ablate's and sweep's flag that is no setting of the runs (nor a sweep-file
    key)."""

    resume: bool = setting(
        False, "--out already holds runs.csv of the same plan: keep its ok runs, run only the "
        "failed and missing ones, report over all")


@dataclass(frozen=True)
class CompareSettings(RunSettings):
    """`dsmnas compare`: the methods, and how they run."""

    methods: str = setting(dataclasses.MISSING, "comma-separated method names (see below), "
                           "e.g. dsm,random; LABEL=METHOD adds a variant", kw_only=True)


@dataclass(frozen=True)
class MethodSpec:
    """One compared method: `label` (its name in the reports) runs `method` with `settings`."""

    label: str
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    """Env settings of this method only, over the plan's shared ones (e.g. an ablation's K)."""


RANGED = ("entropy", "lr")
"""A sweep's parameters that may be a `LogUniform` range."""
DIGITS = 4
"""Significant digits a sweep's value drawn from a range is rounded to."""


def rounded(value: float) -> float:
    """A value drawn from a range, to `DIGITS` significant digits."""
    return float(f"{float(value):.{DIGITS}g}")


@dataclass(frozen=True)
class Config:
    """One swept configuration."""

    K: int
    M: int
    entropy: float
    lr: float | None = None
    """None: not swept (the space's learning rate)."""

    @property
    def label(self) -> str:
        # repr of a float is the shortest text that reads back as it: distinct values,
        # distinct labels
        lr = "" if self.lr is None else f"-lr{float(self.lr)!r}"
        return f"K{self.K}-M{self.M}-ent{float(self.entropy)!r}{lr}"

    @property
    def settings(self) -> dict[str, float]:
        """The DSM-NAS settings this configuration sets."""
        return {"entropy": self.entropy, **({} if self.lr is None else {"lr": self.lr})}


@dataclass(frozen=True)
class LogUniform:
    """A swept float drawn log-uniformly from [low, high] (`LOW..HIGH` in flags and sweep
    files): what a sweep's random draw, optuna or hyperopt sample for entropy or lr."""

    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.low:g}..{self.high:g}"


@dataclass(frozen=True)
class SweepSettings(RunSettings):
    """What a sweep runs; the keys of a sweep file. Lists are given as YAML lists, one
    value, or comma-separated text ("2,4,8")."""

    K: tuple[int, ...] = setting((), "number of candidate subspaces, values swept (default: the "
                            "space's, nb201 4, mobilenet 10)")
    M: tuple[int, ...] = setting((), "local search distance, values swept (default: the space's, "
                            "nb201 4, mobilenet 3)")
    entropy: tuple[float, ...] | LogUniform = setting(
        (), "entropy weight: values swept, or a range LOW..HIGH drawn log-uniformly (random, "
        "optuna, hyperopt) (default: the space's, nb201 7.5e-4, mobilenet 1e-3)",
        metavar="E1,E2,...|LOW..HIGH")
    lr: tuple[float, ...] | LogUniform = setting(
        (), "Adam learning rate: values swept, or a range LOW..HIGH drawn log-uniformly "
        "(default: not swept, the space's, nb201 1e-2, mobilenet 3e-4)",
        metavar="LR1,LR2,...|LOW..HIGH")
    search_alg: str = setting(
        "grid", "how configurations are chosen: grid (every combination of the lists), random "
        "(num_samples drawn with draw_seed), optuna (TPE) or hyperopt (TPE): num_samples "
        "trials, each drawn from the results so far")
    num_samples: int | None = setting(
        None, "configurations to run (random, optuna, hyperopt); never the same one twice")
    draw_seed: int = setting(0, "seed of the random draw, or of optuna's and hyperopt's sampler")
    space: str = setting(EnvConfig.space, "search space")
    dataset: str = setting(EnvConfig.dataset, "dataset whose validation accuracy is the reward")
    table: str | None = setting(None, "NAS-Bench-201 table or official file; default: embedded data")
    budget: float | None = setting(None, "simulated seconds per search; default: the data source's",
                                   metavar="SECONDS")
    scheduler: str = setting(
        "fifo", "fifo: every configuration runs its whole budget; asha: Asynchronous Successive "
        "Halving stops the configurations behind at milestones of the budget (each "
        "configuration's seeds one trial: --population >= --seeds)")
    asha_grace: float = setting(
        1 / 9, "asha: the first milestone, as a fraction of the budget (later ones grow by "
        "asha_reduction)")
    asha_reduction: int = setting(3, "asha: 1 in asha_reduction configurations go on at each "
                                     "milestone")
    cpus_per_trial: float = setting(1.0, "CPUs each trial reserves (torch uses that many threads)")
    gpus_per_trial: float = setting(0.0, "GPUs each trial reserves")


KEYS = tuple(f.name for f in dataclasses.fields(SweepSettings))


@dataclass(frozen=True)
class SweepCommand(RunCommand):
    """`dsmnas sweep`'s flags beside the sweep's keys."""

    config: str | None = setting(
        None, "sweep file (YAML), or NAME for experiments/sweeps/NAME.yaml", metavar="PATH")


K_VALUES = (1, 2, 4, 8, 16)
M_VALUES = (1, 2, 3, 4, 6)
"""The K and M grids of `dsmnas ablate K|M` in a space that declares none (NAS-Bench-201's);
a space declares its own in `SpaceSpec.ablation_grids` (mobilenet: the paper's Fig. 9)."""

ABLATIONS: dict[str, tuple[str, tuple[MethodSpec, ...]]] = {
    "update": ("subspace update on/off with the Fig. 7 random baselines", (
        MethodSpec("dsm", "dsm"),
        MethodSpec("dsm-noupdate", "dsm", env={"update_subspaces": False}),
        MethodSpec("random", "random"),
        MethodSpec("random-mined", "random-mined"),
        MethodSpec("random-update", "random-update"),
    )),
    "reward": ("reward = improvement vs absolute, with subspaces explored (Fig. 8a)", (
        MethodSpec("dsm", "dsm"),
        MethodSpec("dsm-absolute", "dsm", env={"reward": "absolute"}),
    )),
    "graph": ("GNN over the subspace graph (two-way, one-way) vs per-node FC layers (Fig. 8b)", (
        MethodSpec("dsm", "dsm"),
        MethodSpec("dsm-oneway", "dsm-oneway"),
        MethodSpec("dsm-nograph", "dsm", settings={"use_graph": False}),
    )),
    # the grids are the space's (`grid`): nb201 K {1,2,4,8,16}, M {1,2,3,4,6}; mobilenet
    # K {1,5,10,15,20}, M {1,3,5,10,20}
    "K": ("number of candidate subspaces K, the space's grid (Fig. 9a)", ()),
    "M": ("local search distance M, the space's grid (Fig. 9b)", ()),
}


def grid(name: str, space: str = EnvConfig.space) -> tuple[int, ...]:
    """The values of K or M that `dsmnas ablate K|M` runs in `space`: its
    `SpaceSpec.ablation_grids` entry, else `K_VALUES` / `M_VALUES`, with the space's own
    value (the reference) added where missing."""
    from dsmnas.envs.registry import get_spec

    spec = get_spec(space)
    values = spec.ablation_grids.get(name, K_VALUES if name == "K" else M_VALUES)
    return tuple(sorted({*values, reference_value(name, space)}))


def reference_value(name: str, space: str = EnvConfig.space) -> int:
    """The space's own K or M (its `env_defaults`, else EnvConfig's)."""
    from dsmnas.envs.registry import get_spec

    return int(get_spec(space).env_defaults.get(name, getattr(EnvConfig, name)))


def reference(name: str, space: str = EnvConfig.space) -> str | None:
    """The variant of ablation `name` that the Welch t-tests compare with: the space's own
    setting for K and M (NB201's K = M = 4, mobilenet's K = 10, M = 3), else None (dsm)."""
    return f"dsm-{name}{reference_value(name, space)}" if name in ("K", "M") else None


def describe_ablations() -> str:
    return "\n".join(f"  {name:7s} {desc}" for name, (desc, _) in ABLATIONS.items())


def variants(name: str, space: str = EnvConfig.space) -> tuple[MethodSpec, ...]:
    """The variants of ablation `name` in `space`; ValueError listing the known names."""
    if name not in ABLATIONS:
        raise ConfigError(f"unknown ablation {name!r}; allowed: {', '.join(ABLATIONS)}")
    if name in ("K", "M"):
        return tuple(MethodSpec(f"dsm-{name}{v}", "dsm", env={name: v})
                     for v in grid(name, space))
    return ABLATIONS[name][1]
