"""Experiment trackers for `compare`, `ablate` and `sweep`: MLflow and Weights & Biases, the
optional extras `dsmnas[mlflow]` and `dsmnas[wandb]`, through Ray Tune's own logger callbacks.

Both receive every report of every trial (`trainables.live`: `budget_spent`, `best_val_acc`,
`queries`, `policy_entropy`, ...; then the final rows) and write only into the output
folder OUT; nothing goes to the network:
- `mlflow`: `ray.air.integrations.mlflow.MLflowLoggerCallback` with the SQLite store
  `OUT/mlflow.db` (MLflow 3's maintained local backend; its `./mlruns` file store now
  refuses to start without an opt-out), one experiment named after OUT, one run per trial,
  each figure a series over the steps `timesteps_total` (the budget spent). MLflow's usage
  telemetry is turned off (`MLFLOW_DISABLE_TELEMETRY`) before MLflow is imported.
- `wandb`: `ray.air.integrations.wandb.WandbLoggerCallback` in offline mode, one run per trial
  under `OUT/wandb/offline-run-*`, project `$WANDB_PROJECT` (default "dsmnas"), grouped by OUT's
  name; `wandb sync` uploads them later, from a machine that is online.

Checked with strace on `dsmnas compare --tracker mlflow,wandb` (2 trials): the only
connections to addresses other than this node's own are the ones Ray makes without trackers
(the dashboard's cloud-metadata probe, a route lookup); W&B adds local sockets only.

`parse_trackers` checks names and installed packages (one `ConfigError`, before Ray starts);
importing this module imports neither package, nor Ray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from dsmnas.envs.errors import ConfigError, require_extra

WANDB_PROJECT = "dsmnas"
"""The W&B project of the offline runs when `WANDB_PROJECT` is not set."""


def parse_trackers(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """The tracker names in `names` (items or comma-separated text), each once, in order.
    ConfigError for an unknown name (listing the allowed ones) or one whose packages are not
    installed (naming the extra to install)."""
    items = [names] if isinstance(names, str) else list(names or ())
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"trackers: {item!r} is not a tracker name; "
                              f"allowed: {', '.join(TRACKERS)}")
        for name in (t.strip() for t in item.split(",")):
            if not name or name in out:
                continue
            if name not in TRACKERS:
                raise ConfigError(f"unknown tracker {name!r}; allowed: {', '.join(TRACKERS)}")
            require_extra(f"tracker {name!r}", TRACKERS[name].modules, name)
            out.append(name)
    return tuple(out)


def tracker_callbacks(names: Iterable[str], out_dir: str | Path) -> list[Any]:
    """Ray Tune callbacks of the trackers `names` (checked by `parse_trackers`) writing under
    `out_dir`. Imports the trackers' packages (and Ray)."""
    out = Path(out_dir).resolve()
    return [TRACKERS[name].build(out) for name in parse_trackers(names)]


def _mlflow(out: Path):
    # read when mlflow is imported: its telemetry client would fetch a config from the web
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    # "Creating initial MLflow database tables...": noise beside the comparison's progress
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)

    class OutMLflowLoggerCallback(MLflowLoggerCallback):
        """Creates the experiment with its artifact folder in OUT/mlartifacts, where Ray's
        `setup` would leave MLflow's default, `./mlruns` of the working folder."""

        def setup(self, *args, **kwargs):
            from mlflow.tracking import MlflowClient

            client = MlflowClient(self.tracking_uri)
            if client.get_experiment_by_name(self.experiment_name) is None:
                client.create_experiment(self.experiment_name,
                                         artifact_location=(out / "mlartifacts").as_uri())
            super().setup(*args, **kwargs)

        def log_trial_result(self, iteration, trial, result):
            # One batch per report: Ray's logs key by key, a SQLite transaction each (22 s
            # per trial of 20 reports of 40 figures, measured; one batch per report: 1.2 s),
            # all of it in the loop that drives the trials. The same metrics and steps.
            from mlflow.entities import Metric
            from mlflow.tracking import MlflowClient
            from ray.tune.utils import flatten_dict

            step = int(result.get("timesteps_total") or result["training_iteration"])
            now_ms = int(time.time() * 1000)
            metrics = []
            for key, value in flatten_dict(result).items():
                with contextlib.suppress(TypeError, ValueError):  # text is no metric
                    metrics.append(Metric(key, float(value), now_ms, step))
            MlflowClient(self.tracking_uri).log_batch(self._trial_runs[trial], metrics=metrics)

    return OutMLflowLoggerCallback(tracking_uri=f"sqlite:///{out / 'mlflow.db'}",
                                   experiment_name=out.name, tags={"dsmnas.out": str(out)})


def _wandb(out: Path):
    from ray.air.integrations.wandb import WandbLoggerCallback

    class OfflineWandbLoggerCallback(WandbLoggerCallback):
        """Asks for no API key: Ray's `setup` wants one unless WANDB_MODE says offline in
        the driver's environment, which this sets only while `setup` runs. (Defined here,
        where wandb's callback can be imported; Tune pickles it with cloudpickle.)"""

        def setup(self, *args, **kwargs):
            saved = os.environ.get("WANDB_MODE")
            os.environ["WANDB_MODE"] = "offline"
            try:
                super().setup(*args, **kwargs)
            finally:
                if saved is None:
                    os.environ.pop("WANDB_MODE", None)
                else:
                    os.environ["WANDB_MODE"] = saved

    # wandb.init's own arguments, in the logging actor of each trial: offline, its files in
    # OUT/wandb/ (wandb adds the `wandb` folder to `dir`)
    return OfflineWandbLoggerCallback(
        project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT, group=out.name,
        mode="offline", dir=str(out), settings={"silent": True})


@dataclass(frozen=True)
class _Tracker:
    modules: tuple[str, ...]
    """What it imports (the extra `dsmnas[NAME]` installs them)."""
    build: Callable[[Path], Any]
    """Its Tune callback, writing under the output folder."""


TRACKERS = {
    # MLflow's SQLite store needs sqlalchemy and alembic (`mlflow-skinny` leaves them out)
    "mlflow": _Tracker(("mlflow", "sqlalchemy", "alembic"), _mlflow),
    "wandb": _Tracker(("wandb",), _wandb),
}
"""The trackers by name: what `--tracker` allows."""
