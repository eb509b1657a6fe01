"""DyNAS-T's search trajectories on OFA MobileNetV3 under our `mobilenet` space's hypervolume.

`../shared/data/ofa-dynast/` holds five DyNAS-T (IntelLabs, Apache-2.0) search trajectories on
OFA MobileNetV3-w1.0: each row an evaluated subnet, its measured ImageNet top-1 (%) and its
MACs, in the order evaluated (`Date`). This script reads each as a frame of `evaluation`
(1..N), `top1_acc` (%) and `macs_m` (MACs / 1e6), and gives each its anytime hypervolume at
equal evaluations (after n evaluations, n = 1..N) under our `mobilenet` space's normalisation
for `--objectives val_acc:max,macs_m:min`: the error (100 - top-1) / 100 and macs_m / 600,
reference point (1, 1) (`envs.benchmarks.mobilenet.objective_scale`). Every subnet here is
under 600 M MACs, so all are feasible under the space's default limit.

Caveat: same axes, not the same objective. DyNAS-T measured w1.0 subnets on ImageNet with
weights inherited from the supernet; our `mobilenet` space scores w1.2 subnets with OFA's
accuracy predictor, whose values sit above w1.0's measured ones, and whose subnets have more
MACs. Compare the curves' shapes and the evaluations they need, not their heights.

How to run (from the repository root):
    .venv/bin/python benchmarks/dynast_trajectories.py [--data ../shared/data/ofa-dynast]
        [--compare DIR [--out PNG]]

It prints, per trajectory, N evaluations, the final hypervolume and the hypervolume after
100, 250, 500 and 1,000 evaluations (– where the trajectory is shorter). With `--compare DIR`,
a `dsmnas compare --space mobilenet --objectives val_acc:max,macs_m:min` folder, it also writes
a PNG (default DIR/dynast_hypervolume.png) with the comparison's validation hypervolume by
queries (mean ± std over seeds per method) and the trajectories' on the same axes.

Results measured (the five files in ../shared; `evoga_acc` and `linasga_acc` searched top-1
alone, the others top-1 and MACs, `evounsga3` also parameters; ~1 s):

| trajectory | N | final HV | HV@100 | HV@250 | HV@500 | HV@1000 |
|---|---|---|---|---|---|---|
| evoga_acc | 364 | 0.5197 | 0.5177 | 0.5194 | – | – |
| evonsga2_acc_macs | 540 | 0.5908 | 0.5405 | 0.5737 | 0.5907 | – |
| evounsga3_acc_macs_params | 554 | 0.5944 | 0.5594 | 0.5619 | 0.5876 | – |
| linasga_acc | 361 | 0.5235 | 0.5231 | 0.5231 | – | – |
| linasnsga2_acc_macs | 554 | 0.6076 | 0.5378 | 0.5773 | 0.6075 | – |

Against `dsmnas compare --space mobilenet --methods random --objectives val_acc:max,macs_m:min
--seeds 3 --budget-queries 1000` (OFA predictor), random search's validation hypervolume after
1,000 queries is 0.4746 ± 0.0137, below every trajectory's final one, although its fronts'
predicted top-1 (78.9-83.3 %, at 244-543 M MACs) is above DyNAS-T's measured top-1: w1.2
subnets also cost more MACs (193-843 M at 224 against w1.0's 121-566 M). Another reason the
heights are not comparable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

SHARED = Path(os.environ.get("DSMNAS_SHARED") or Path(__file__).resolve().parents[2] / "shared")
DATA = SHARED / "data" / "ofa-dynast"
AT_EVALUATIONS = (100, 250, 500, 1000)
"""The evaluation counts of the printed table."""
CAVEAT = ("DyNAS-T measured OFA MobileNetV3-w1.0 subnets on ImageNet; our mobilenet space "
          "scores w1.2 subnets with OFA's accuracy predictor: same axes, not the same "
          "objective.")
OBJECTIVES_TEXT = "val_acc:max,macs_m:min"
PNG = "dynast_hypervolume.png"


def mobilenet_objectives():
    """`--objectives val_acc:max,macs_m:min` with the `mobilenet` space's fixed normalisation:
    accuracy (%) over (0, 100), macs_m over (0, 600) (`envs.benchmarks.mobilenet`)."""
    from dsmnas.envs.benchmarks.mobilenet import MACS_SCALE_M, MobileNetBenchmark
    from dsmnas.envs.objectives import Objectives

    return Objectives(("val_acc", "macs_m"), ("max", "min"), (0.0, 0.0),
                      (float(MobileNetBenchmark.acc_scale), float(MACS_SCALE_M)))


def load_trajectory(path: str | Path) -> pd.DataFrame:
    """One trajectory file: `evaluation` (1..N, in the order of `Date`), `top1_acc` (measured
    ImageNet top-1, %) and `macs_m` (MACs / 1e6)."""
    raw = pd.read_csv(path)
    raw = raw.assign(date=pd.to_datetime(raw["Date"])).sort_values("date", kind="stable")
    return pd.DataFrame({"evaluation": np.arange(1, len(raw) + 1),
                         "top1_acc": raw["Top-1 Acc (%)"].to_numpy(float),
                         "macs_m": raw["MACs"].to_numpy(float) / 1e6})


def load_trajectories(folder: str | Path = DATA) -> dict[str, pd.DataFrame]:
    """Every `*.csv` of `folder`, by name (the file's stem without `mbnv3w10_`), sorted;
    FileNotFoundError naming the folder when it holds none."""
    paths = sorted(Path(folder).glob("*.csv"))
    if not paths:
        raise FileNotFoundError(f"no DyNAS-T trajectory (*.csv) in {folder}")
    return {p.stem.removeprefix("mbnv3w10_"): load_trajectory(p) for p in paths}


def anytime_hypervolume(trajectory: pd.DataFrame, objectives=None) -> np.ndarray:
    """The hypervolume of the first n evaluations, n = 1..N, under the mobilenet space's
    normalisation (`envs.objectives.anytime_hypervolume` by queries, as a comparison's)."""
    from dsmnas.envs.objectives import anytime_hypervolume as by_queries

    objectives = objectives or mobilenet_objectives()
    history = pd.DataFrame({"val_acc": trajectory["top1_acc"], "macs_m": trajectory["macs_m"],
                            "sim_time_s": 0.0})  # a budget of queries: no simulated time
    grid = np.arange(1, len(history) + 1, dtype=float)
    return by_queries(history, objectives, None, grid, x="queries")


def table(trajectories: Mapping[str, pd.DataFrame],
          at: Sequence[int] = AT_EVALUATIONS) -> pd.DataFrame:
    """One row per trajectory: `N`, `final_hv` and `hv_<n>` (NaN where N < n)."""
    rows = []
    for name, trajectory in trajectories.items():
        hv = anytime_hypervolume(trajectory)
        rows.append({"trajectory": name, "N": len(hv), "final_hv": hv[-1] if len(hv) else 0.0,
                     **{f"hv_{n}": hv[n - 1] if n <= len(hv) else math.nan for n in at}})
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, at: Sequence[int] = AT_EVALUATIONS) -> list[str]:
    """The table's lines, with the objectives and the caveat."""
    def cell(v: float) -> str:
        return "–" if math.isnan(v) else f"{v:.4f}"

    lines = [f"DyNAS-T trajectories, hypervolume under the mobilenet space's {OBJECTIVES_TEXT} "
             "(error / 100, macs_m / 600, reference (1, 1)). " + CAVEAT, "",
             "| trajectory | N | final HV | " + " | ".join(f"HV@{n}" for n in at) + " |",
             "|---|---|---|" + "---|" * len(at)]
    for r in summary.to_dict("records"):
        lines.append(f"| {r['trajectory']} | {r['N']} | {cell(r['final_hv'])} | "
                     + " | ".join(cell(r[f"hv_{n}"]) for n in at) + " |")
    return lines


def _folders(folders: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(folders, (str, Path)):
        return [Path(folders)]
    return [Path(f) for f in folders]


def comparison_curves(folders: str | Path | Sequence[str | Path], grid: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """Per method of `dsmnas compare --space mobilenet --objectives val_acc:max,macs_m:min`
    folders (one or several, e.g. one per method), an array (runs x grid) of its validation
    hypervolume after each number of queries of `grid` (a query is one evaluation: the
    history's rows, counted in order; the mobilenet budget counts queries); ConfigError for
    another space or other objectives."""
    curves: dict[str, list[np.ndarray]] = {}
    for folder in _folders(folders):
        for method, c in _folder_curves(folder, grid).items():
            curves.setdefault(method, []).append(c)
    return {m: np.vstack(c) for m, c in curves.items()}


def _folder_curves(folder: Path, grid: np.ndarray) -> dict[str, np.ndarray]:
    from dsmnas.envs.errors import ConfigError
    from dsmnas.envs.objectives import anytime_hypervolume as by_queries
    from dsmnas.envs.objectives import parse_objectives
    from dsmnas.experiments import report

    folder = Path(folder)
    env = json.loads((folder / "plan.json").read_text())["env"]
    objectives = mobilenet_objectives()
    if env.get("space") != "mobilenet" or \
            parse_objectives(env.get("objectives")) != parse_objectives(OBJECTIVES_TEXT):
        raise ConfigError(f"{folder} is a comparison of space {env.get('space')!r} with "
                          f"objectives {env.get('objectives')!r}; DyNAS-T's trajectories go "
                          f"with --space mobilenet --objectives {OBJECTIVES_TEXT}")
    runs = pd.read_csv(folder / "runs.csv")
    histories = report.load_histories(runs, folder / "histories")
    curves: dict[str, list[np.ndarray]] = {}
    for (method, _seed), h in histories.items():
        curves.setdefault(method, []).append(
            by_queries(h, objectives, env.get("limits"), grid, x="queries"))
    return {m: np.vstack(c) for m, c in curves.items()}


def equal_evaluations(folders: str | Path | Sequence[str | Path],
                      at: Sequence[int] = AT_EVALUATIONS) -> list[str]:
    """Markdown lines: each method's validation hypervolume (mean ± std over its runs) after
    each number of queries of `at`, to set beside DyNAS-T's table (– beyond the budget)."""
    grid = np.array(at, dtype=float)
    curves = comparison_curves(folders, grid)
    runs = pd.concat([pd.read_csv(f / "runs.csv") for f in _folders(folders)])
    spent = runs.groupby("method")["queries"].min()
    lines = ["| method (ours, w1.2 predictor) | runs | " + " | ".join(f"HV@{n}" for n in at)
             + " |", "|---|---|" + "---|" * len(at)]
    for method, c in curves.items():
        cells = [f"{c[:, j].mean():.4f} ± {c[:, j].std(ddof=1):.4f}" if n <= spent[method]
                 else "–" for j, n in enumerate(at)]
        lines.append(f"| {method} | {len(c)} | " + " | ".join(cells) + " |")
    return lines


def plot_with_comparison(trajectories: Mapping[str, pd.DataFrame],
                         folder: str | Path | Sequence[str | Path], path: str | Path) -> Path:
    """A PNG of the comparison's validation hypervolume by queries (mean ± std over seeds per
    method) with each DyNAS-T trajectory's hypervolume by evaluations, on a log axis.
    Caveat: DyNAS-T measured w1.0 subnets on ImageNet, the comparison's reward is OFA's w1.2
    predictor: same axes, not the same objective."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dsmnas.experiments import report

    runs = pd.concat([pd.read_csv(f / "runs.csv") for f in _folders(folder)])
    end = int(max([*report.finished(runs)["queries"].fillna(0).astype(int), 1,
                   *[len(t) for t in trajectories.values()]]))
    grid = np.unique(np.round(np.geomspace(1, end, 300)))
    curves = comparison_curves(folder, grid)
    colors = report._colors(report.method_order(runs))
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    for method, c in curves.items():
        mean = c.mean(axis=0)
        std = c.std(axis=0, ddof=1) if len(c) > 1 else np.zeros_like(mean)
        ax.plot(grid, mean, color=colors[method], lw=1.8,
                label=f"{method} (ours, w1.2 predictor, n={len(c)})")
        ax.fill_between(grid, mean - std, mean + std, color=colors[method], alpha=0.2, lw=0)
    for k, (name, trajectory) in enumerate(trajectories.items()):
        hv = anytime_hypervolume(trajectory)
        ax.plot(np.arange(1, len(hv) + 1), hv, color=f"C{(len(colors) + k) % 10}", lw=1.2,
                ls="--", label=f"DyNAS-T {name} (measured w1.0)")
    ax.set_xscale("log")
    ax.set_xlabel("evaluations (queries)")
    ax.set_ylabel("hypervolume so far (validation)")
    ax.set_title(f"{OBJECTIVES_TEXT}, mobilenet normalisation\nsame axes, not the same "
                 "objective: w1.0 measured on ImageNet vs the w1.2 predictor",
                 fontsize="medium")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize="small")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DATA), help="folder of the trajectory CSV files")
    p.add_argument("--compare", default=None, nargs="+",
                   help="`dsmnas compare --space mobilenet --objectives "
                        f"{OBJECTIVES_TEXT}` folders (one or several) to set beside them")
    p.add_argument("--out", default=None, help=f"the PNG (default FIRST_COMPARE/{PNG})")
    args = p.parse_args(argv)
    trajectories = load_trajectories(args.data)
    print("\n".join(markdown(table(trajectories))))
    if args.compare:
        print("\n" + "\n".join(equal_evaluations(args.compare)))
        out = plot_with_comparison(trajectories, args.compare,
                                   args.out or Path(args.compare[0]) / PNG)
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
