"""One search as a Ray Tune trial: the function trainable that `dsmnas compare` runs.

A trial's config is `{"label", "method", "seed", "seeds", "env", "settings",
"env_overrides", "live"}`: `method` is a name in `trainables.methods.METHODS`, `label` what the
reports call it (the method name, or a variant such as `dsm-nograph` that runs `dsm` with
other settings), `env` an `EnvConfig` dict (with the seed), `env_overrides` this label's own
env settings over it. `seeds` is `[seed]` for one search, or a population's seeds (population
mode, `trainables.population`: the searches run as one batch). The trial writes each
search's history into its trial directory (`history.csv`, or `history-<seed>.csv` in a
population). While it searches it reports progress (`trainables.live`: `live` holds its
`LiveSettings`; a DSM-NAS search checkpoints with every few reports, and a restarted trial
continues from its last checkpoint), and at the end one result per search: the fields of a
row of `runs.csv` (test accuracy flattened to `test_acc_<dataset>`, `seed` its own) plus the
history as CSV text, so that the driver gets it even when the trial ran on a node whose disk
it cannot read; each final result carries the trial's last progress figures too, with
`report` = "result".
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ray import tune

from dsmnas.envs.config import EnvConfig
from dsmnas.trainables.live import LiveSettings, TrialReporter, reporting
from dsmnas.trainables.search import SearchResult

HISTORY_FILE = "history.csv"
HISTORY_KEY = "history_csv"
"""Result key of the history as CSV text."""
FRONT_KEY = "front_csv"
"""Result key of a multi-objective search's front as CSV text (absent otherwise)."""
RESULT_FIELDS = ("method", "seed", "arch", "val_acc", "queries", "sim_time_s", "wall_time_s")
"""Fields of a run's row, besides one `test_acc_<dataset>` per dataset the data has, and the
best visited architecture's `best_visited_arch`, `best_visited_val_acc` and
`best_visited_test_acc_<dataset>`."""


def result_row(result: SearchResult, label: str) -> dict[str, Any]:
    """A run's row of runs.csv: `RESULT_FIELDS` and the flattened test accuracy."""
    row = {
        "method": label,
        "seed": result.seed,
        "arch": result.arch,
        "val_acc": float(result.val_acc),
        "queries": int(result.queries),
        "sim_time_s": float(result.sim_time_s),
        "wall_time_s": float(result.wall_time_s),
    }
    row.update({f"test_acc_{ds}": float(v) for ds, v in (result.test_acc or {}).items()})
    visited = result.best_visited
    if visited is not None:
        row.update(best_visited_arch=visited["arch"], best_visited_val_acc=visited["val_acc"])
        row.update({f"best_visited_test_acc_{ds}": float(v)
                    for ds, v in (visited["test_acc"] or {}).items()})
    row.update(result.front_figures or {})
    return row


def search_trainable(config: dict[str, Any]) -> None:
    """Run one search (`run_method`), or the population of `config["seeds"]` when it has
    several (`run_method_population`), and report one row per search; see the module
    docstring."""
    import torch

    from dsmnas.trainables.methods import run_method, run_method_population

    # One thread per CPU of the trial (one by default): torch's default of one thread per
    # core would make concurrent trials fight over the same cores.
    torch.set_num_threads(_trial_threads())
    env = EnvConfig.from_dict({**config["env"], **(config.get("env_overrides") or {})})
    seeds = [int(s) for s in config.get("seeds") or [config["seed"]]]
    label = config.get("label", config["method"])
    # progress reports carry the final rows' keys (runs.csv's columns), empty until the end
    row = {**dict.fromkeys(config.get("columns") or ()), "method": label,
           "seed": seeds[0] if len(seeds) == 1 else None, HISTORY_KEY: None}
    if env.objectives is not None:
        row[FRONT_KEY] = None
    for key in ("status", "error"):
        row.pop(key, None)
    live = TrialReporter(LiveSettings(**(config.get("live") or {})), row=row)
    with reporting(live):
        if len(seeds) == 1:
            results = [run_method(config["method"], env, config.get("settings"))]
        else:
            results = run_method_population(config["method"], env, config.get("settings"), seeds)
    trial_dir = Path(tune.get_context().get_trial_dir())
    trial_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed, result in zip(seeds, results):
        name = HISTORY_FILE if len(seeds) == 1 else f"history-{seed}.csv"
        result.history.to_csv(trial_dir / name, index=False)
        row = result_row(result, label)
        row["seed"] = seed
        row[HISTORY_KEY] = result.history.to_csv(index=False)
        if result.front is not None:
            row[FRONT_KEY] = result.front.to_csv(index=False)
        rows.append(row)
    if live.last is not None:
        live.final(*live.last[:1], rows, entropy=live.last[1])
    else:  # a method that reports nothing while it searches
        for row in rows:
            tune.report({**row, "report": "result"})


def _trial_threads() -> int:
    """Torch threads for this trial: the whole CPUs it reserved, at least one."""
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    return max(1, int(cpus))


DEFAULT_RESOURCES = {"cpu": 1}
"""What one trial reserves unless told otherwise."""


def with_resources(resources: dict[str, float] | None = None, trainable=search_trainable):
    """`trainable` (default `search_trainable`) reserving `resources` per trial
    (`{"cpu": C, "gpu": G}`; default one CPU): what `tune.Tuner` is given."""

    # tune.with_resources sets an attribute on the function it is given: a fresh function per
    # call, so that one comparison's resources never leak into another's
    @functools.wraps(trainable)
    def trial(config: dict[str, Any]) -> None:
        trainable(config)

    return tune.with_resources(trial, dict(resources or DEFAULT_RESOURCES))


search_trial = with_resources()
"""`search_trainable` with one CPU per trial."""
