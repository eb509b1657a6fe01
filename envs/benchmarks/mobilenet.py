"""Rewards of the MobileNet-like (OFA) space: three evaluators behind one benchmark.

- `predictor`: OFA's pretrained ImageNet top-1 predictor (an MLP over one-hot kernel /
  expand / resolution features), through `ofa.tutorial.AccuracyPredictor`. Microseconds per
  query; the fast reward for CPU runs and tests.
- `supernet`: a weight-sharing OFA MobileNetV3 supernet (`dsmnas train-supernet`), each query
  a subnet with recalibrated BatchNorm scored on fixed held-out images; in-process or through
  named Ray actors (`envs.evaluators.client`) that several searches share.
- `fitted`: an MLP fitted to supernet scores (`dsmnas fit-predictor`), the paper's setup.

All count their budget in queries (the paper's 10k), report accuracies in percent and know
the MACs of an architecture (`ofa`'s analytic MobileNetV3 count), which the environment uses
to keep centers within the mobile setting's limit.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass

import numpy as np

from dsmnas.envs.benchmarks.base import Benchmark, Metric
from dsmnas.envs.objectives import ObjectiveScale
from dsmnas.envs.registry import SpaceSpec
from dsmnas.envs.settings import setting
from dsmnas.envs.spaces.mobilenet import MobileNetSpace, macs_m
from dsmnas.envs.errors import ConfigError, MissingFileError

DEFAULT_PREDICTOR = os.path.join(os.path.expanduser("~"), ".torch", "acc_predictor.pth")
"""Where `ofa`'s tutorial loader looks for the pretrained predictor before downloading it."""
PREDICTOR_RESOLUTIONS = tuple(range(112, 225, 16))
"""Resolutions the pretrained predictor encodes (one-hot of (r - 112) // 16)."""


class MobileNetBenchmark(Benchmark):
    """A MobileNet-like benchmark: subclasses score batches of `ofa` subnet dicts."""

    space = MobileNetSpace()
    acc_scale = 100.0

    recorded_metrics = ("macs_m",)

    def __init__(self, resolution: int, width_mult: float, max_macs_m: float | None = 600.0,
                 macs_resolution: int = 224):
        self.resolution = int(resolution)
        self.width_mult = float(width_mult)
        self.macs_resolution = int(macs_resolution)
        self.metrics = {"macs_m": Metric(
            f"million MACs at {self.macs_resolution}x{self.macs_resolution}",
            "ofa's analytic MobileNetV3 count")}
        self.limits = {} if max_macs_m is None else {"macs_m": float(max_macs_m)}
        self._macs: dict[tuple[int, int], float] = {}

    @property
    def max_macs_m(self) -> float | None:
        """The MACs limit in millions at `macs_resolution` (None: no limit)."""
        return self.limits.get("macs_m")

    @abc.abstractmethod
    def score(self, archs: list[dict]) -> list[float]:
        """Validation accuracy in percent of each `ofa` subnet dict."""

    # -- Benchmark -------------------------------------------------------------------------
    def _answers(self, batch, cached, charged) -> list[float]:
        """The batch scored in one `score` call (with evaluator actors: spread over the
        actors at once)."""
        return self.score([self.space.to_ofa(tokens) for tokens in batch])

    def cost_s(self, tokens: np.ndarray) -> float:
        return 0.0

    def report(self, tokens: np.ndarray) -> dict[str, float]:
        return {}

    # -- the MACs limit ---------------------------------------------------------------------
    def macs_m(self, tokens: np.ndarray, resolution: int | None = None) -> float:
        """MACs in millions at `resolution` (default: the limit's resolution)."""
        r = self.macs_resolution if resolution is None else int(resolution)
        key = (self.space.key(tokens), r)
        if key not in self._macs:
            self._macs[key] = macs_m(self.space.to_ofa(tokens), r, self.width_mult)
        return self._macs[key]

    def metric(self, name: str, tokens: np.ndarray) -> float:
        if name != "macs_m":
            return super().metric(name, tokens)
        return self.macs_m(tokens)

    def answer_metrics(self, tokens: np.ndarray) -> dict[str, float]:
        """The answer's MACs at the search resolution and at the limit's, the limit, and the
        supernet's width (what the MACs are counted on)."""
        return {
            "macs_m": self.macs_m(tokens, self.resolution),
            "resolution": self.resolution,
            "width_mult": self.width_mult,
            "max_macs_m": self.max_macs_m,
            "macs_resolution": self.macs_resolution,
            "macs_m_at_limit_resolution": self.macs_m(tokens),
        }


class PredictorBenchmark(MobileNetBenchmark):
    """OFA's pretrained ImageNet accuracy predictor as the reward (w1.2 supernet)."""

    val_metric = "ofa_predicted_top1"

    def __init__(self, predictor: str | None = None, resolution: int = 224,
                 width_mult: float = 1.2, dataset: str = "imagenet", **kw):
        if resolution not in PREDICTOR_RESOLUTIONS:
            raise ConfigError(
                f"the OFA accuracy predictor encodes resolutions {list(PREDICTOR_RESOLUTIONS)}; "
                f"got {resolution!r}"
            )
        if dataset != "imagenet":
            raise ConfigError(f"the OFA accuracy predictor predicts imagenet accuracy, not {dataset!r}")
        super().__init__(resolution, width_mult, **kw)
        self.dataset = dataset
        self.predictor_path = _predictor_path(predictor)
        self.source = f"ofa-predictor:{self.predictor_path}"
        self._model = load_ofa_predictor(self.predictor_path)

    def score(self, archs: list[dict]) -> list[float]:
        import torch

        feats = torch.stack([
            self._model.spec2feats(list(a["ks"]), list(a["e"]), list(a["d"]), self.resolution)
            for a in archs
        ])
        with torch.no_grad():
            return (100.0 * self._model.model(feats)[:, 0]).tolist()


class SupernetBenchmark(MobileNetBenchmark):
    """A trained OFA supernet: in-process, or through the named evaluator actors."""

    val_metric = "supernet_val_top1"

    def __init__(self, checkpoint: str | None, data: str | None = None,
                 service: str | None = None, dataset: str | None = None,
                 resolution: int | None = None, width_mult: float | None = None, **kw):
        if service is not None:
            from dsmnas.envs.evaluators.client import EvaluatorClient

            self.evaluator = EvaluatorClient.connect(service)
            info = self.evaluator.info()
            where = f"service:{service}"
        else:
            if checkpoint is None:
                raise ConfigError(
                    "the supernet evaluator needs a checkpoint (`dsmnas train-supernet`) or a "
                    "running evaluator service"
                )
            from dsmnas.envs.evaluators.supernet import SubnetEvaluator

            self.evaluator = SubnetEvaluator(checkpoint, data=data)
            info = {"resolution": self.evaluator.resolution, "meta": self.evaluator.meta}
            where = checkpoint
        meta = info["meta"]
        _agree("resolution", resolution, info["resolution"])
        _agree("width_mult", width_mult, meta["width_mult"])
        _agree("dataset", dataset, meta["dataset"])
        super().__init__(info["resolution"], meta["width_mult"], **kw)
        self.dataset = meta["dataset"]
        self.source = f"supernet:{where}"

    def score(self, archs: list[dict]) -> list[float]:
        return list(self.evaluator.evaluate(archs))

    def report(self, tokens: np.ndarray) -> dict[str, float]:
        """Test accuracy of the answer's subnet on the checkpoint's test images."""
        return {self.dataset: float(self.evaluator.test_accuracy(self.space.to_ofa(tokens)))}


class FittedBenchmark(MobileNetBenchmark):
    """An MLP fitted to supernet scores (`dsmnas fit-predictor`) as the reward."""

    val_metric = "fitted_predicted_top1"

    def __init__(self, predictor: str | None, dataset: str | None = None,
                 resolution: int | None = None, width_mult: float | None = None, **kw):
        if predictor is None:
            raise ConfigError("the fitted evaluator needs --predictor PATH (`dsmnas fit-predictor`)")
        from dsmnas.envs.evaluators.fitted import load_fitted

        self.model = load_fitted(predictor)
        meta = self.model.meta
        _agree("resolution", resolution, meta["image_size"])
        _agree("width_mult", width_mult, meta.get("width_mult", width_mult))
        _agree("dataset", dataset, meta.get("dataset", dataset))
        super().__init__(meta["image_size"], meta.get("width_mult", 1.0), **kw)
        self.dataset = meta.get("dataset") or dataset or "unknown"
        self.source = f"fitted:{predictor}"

    def score(self, archs: list[dict]) -> list[float]:
        return [float(v) for v in self.model.predict(archs)]

    def report(self, tokens: np.ndarray) -> dict[str, float]:
        """Test accuracy of the answer's subnet on the supernet the MLP was fitted to, when
        that checkpoint is still where it was ({} otherwise)."""
        checkpoint = self.model.meta.get("source")
        if not (isinstance(checkpoint, str) and os.path.isfile(checkpoint)):
            return {}
        from dsmnas.envs.evaluators.supernet import SubnetEvaluator

        acc = SubnetEvaluator(checkpoint).test_accuracy(self.space.to_ofa(tokens))
        return {self.dataset: float(acc)}


def _agree(name: str, given, actual) -> None:
    if given is not None and given != actual:
        raise ConfigError(f"{name} {given!r} does not match the evaluator's {actual!r}")


def _predictor_path(path: str | None) -> str:
    p = path or DEFAULT_PREDICTOR
    if not os.path.isfile(p):
        raise MissingFileError(
            f"OFA accuracy predictor {p!r} not found: pass --predictor PATH to your copy of "
            f"acc_predictor.pth (released with mit-han-lab/once-for-all); nothing is downloaded"
        )
    return p


def load_ofa_predictor(path: str, device: str = "cpu"):
    """`ofa.tutorial.AccuracyPredictor` with the weights in `path` (never downloads)."""
    import torch
    from ofa.tutorial.accuracy_predictor import AccuracyPredictor

    predictor = AccuracyPredictor(pretrained=False, device=device)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        predictor.model.load_state_dict(state)
    except Exception as e:  # a wrong file: say which, and what it should be
        raise ConfigError(
            f"{path} is not OFA's acc_predictor.pth (an MLP 128-400-400-400-1 state dict): "
            f"{type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None
    predictor.model.eval()
    return predictor


def make_mobilenet_benchmark(cfg) -> MobileNetBenchmark:
    """The benchmark an `EnvConfig` of the mobilenet space describes (its MACs limit is set
    from `cfg.limits` by `envs.benchmarks.make_benchmark`)."""
    common = dict(max_macs_m=None, macs_resolution=cfg.macs_resolution)
    if cfg.evaluator == "predictor":
        return PredictorBenchmark(
            cfg.predictor, cfg.resolution or 224, cfg.width_mult or 1.2, cfg.dataset, **common
        )
    if cfg.evaluator == "supernet":
        return SupernetBenchmark(
            cfg.checkpoint, cfg.data, cfg.evaluator_service, cfg.dataset, cfg.resolution,
            cfg.width_mult, **common,
        )
    return FittedBenchmark(cfg.predictor, cfg.dataset, cfg.resolution, cfg.width_mult, **common)


MACS_SCALE_M = 600.0
"""`--objectives`' fixed range of macs_m: (0, 600), the space's default limit (the paper's)."""


def objective_scale(benchmark: MobileNetBenchmark) -> ObjectiveScale:
    """The MobileNet-like space's fixed normalisation for `--objectives`: accuracy in % over
    (0, 100), i.e. the error (100 - acc) / 100, and macs_m over (0, 600), whatever the
    limit. Not a table: no true front."""
    return ObjectiveScale({"val_acc": (0.0, benchmark.acc_scale), "macs_m": (0.0, MACS_SCALE_M)})


EVALUATORS = ("predictor", "supernet", "fitted")
"""Rewards of the MobileNet-like space: OFA's pretrained ImageNet accuracy predictor, a
weight-sharing supernet evaluated on held-out images, or an MLP fitted to supernet scores."""


@dataclass(frozen=True)
class MobileNetSettings:
    """The MobileNet-like space's own env settings."""

    evaluator: str = setting("predictor", f"reward: {', '.join(EVALUATORS)}")
    predictor: str | None = setting(
        None, "predictor file: OFA's acc_predictor.pth (default ~/.torch/acc_predictor.pth) "
        "or a fitted predictor (`dsmnas fit-predictor`)")
    checkpoint: str | None = setting(None, "supernet checkpoint (`dsmnas train-supernet`)")
    data: str | None = setting(
        None, "images for the supernet evaluator (default: the checkpoint's)")
    resolution: int | None = setting(
        None, "search resolution (predictor default 224; supernet: the checkpoint's)")
    width_mult: float | None = setting(
        None, "OFA supernet width, 1.0 or 1.2 (predictor default 1.2; supernet: the "
        "checkpoint's)")
    macs_resolution: int = setting(224, "resolution at which MACs (and their limit) are counted")
    evaluator_service: str | None = setting(
        None, "name of running supernet evaluator actors (default: evaluate in-process)")

    def __post_init__(self):
        if self.evaluator not in EVALUATORS:
            raise ConfigError(
                f"unknown evaluator {self.evaluator!r}; allowed: {', '.join(EVALUATORS)}"
            )


def _complete(values: dict) -> dict:
    # OFA's predictor predicts ImageNet accuracy; a supernet's dataset is its checkpoint's
    return {"dataset": "imagenet"} if values["evaluator"] == "predictor" else {}


SPEC = SpaceSpec(
    name="mobilenet",
    space=MobileNetSpace,
    benchmark=make_mobilenet_benchmark,
    settings=MobileNetSettings,
    env_defaults={
        "K": 10, "M": 3, "budget_queries": 10_000, "limits": {"macs_m": 600.0},
        "over_limit": "query",
    },
    learner_defaults={"lr": 3e-4, "entropy": 1e-3},
    # `dsmnas sweep --random 8` of K {5,10,15} x M {1,2,3} x entropy {3e-4,1e-3,3e-3} x lr
    # {1e-4,3e-4,1e-3}, seeds 100-103, OFA predictor, 10,000 queries: the highest mean
    # validation accuracy (README, "Tuning DSM-NAS, on validation only")
    tuned={"K": 10, "M": 2, "entropy": 3e-4, "lr": 1e-3},
    budget="queries",
    # the paper's Fig. 9: K up to 20 with M = 3 (9a), M in {1, 3, 5, 10, 20} with K = 10 (9b)
    ablation_grids={"K": (1, 5, 10, 15, 20), "M": (1, 3, 5, 10, 20)},
    limit_aliases={"max_macs_m": "macs_m"},
    complete=_complete,
    objectives=objective_scale,
    description="MobileNet-like OFA space (20 tokens, <= 600M MACs): OFA's predictor, a "
                "supernet, or a fitted predictor",
)
