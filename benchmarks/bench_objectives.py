"""Several objectives on every benchmark: DSM-NAS's multi-objective forms against the baselines.

How to run:  python benchmarks/bench_objectives.py [--cases nb201-cifar10-latency,...]
             [--seeds 30] [--out runs/objectives] [--methods dsm,dsm-hv,random,...]

Each case is one `dsmnas compare --objectives ...` at the space's default budget, seeds
0..S-1 (S = `--seeds`), DSM-NAS and its variants in population mode:

- NAS-Bench-201 (the shared table, the paper's 25,000 s budget): validation accuracy vs
  `latency_s` and vs `params_mb`, on cifar10, cifar100 and ImageNet16-120;
- NAS-Bench-Graph: cora and computers, vs `latency_s`;
- FCNet: naval_propulsion, the reward (-10 log10 validation loss, dB) vs `model_size`;
- MobileNet-like: OFA's accuracy predictor (../shared/models/ofa) vs `macs_m`.

A case whose `runs.csv` already holds every run is not run again (so the script can be
stopped and restarted); `ppo-flat`, the slowest method by far (RLlib PPO, about 25 s a search
on 2 cores), runs only in the cases `--ppo-cases` names. `DIR/objectives.md` gets one table per
case: per method, mean ± std over the seeds of the front's hypervolume on validation and on
test (NAS-Bench-201: the front re-scored with the 200-epoch test accuracy; reports only) and
IGD+ to the true front where the space knows it, with Welch's p against `dsm`, and the true
front's hypervolume (the ceiling of the validation figure) where the space knows it.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

SHARED = Path(__file__).resolve().parents[2] / "shared"
TABLE = SHARED / "data/nb201/nb201.csv.gz"
PREDICTOR = SHARED / "models/ofa/acc_predictor.pth"
METHODS = "dsm,dsm-hv,random,evolution,local,nsga2,ppo-flat"


def _nb201(dataset: str, metric: str) -> list[str]:
    return ["--table", str(TABLE), "--dataset", dataset, "--budget", "25000",
            "--objectives", f"val_acc:max,{metric}:min"]


CASES: dict[str, list[str]] = {
    **{f"nb201-{d}-{m.split('_')[0]}": _nb201(d, m)
       for d in ("cifar10", "cifar100", "ImageNet16-120") for m in ("latency_s", "params_mb")},
    "nbg-cora-latency": ["--space", "nasbench-graph", "--dataset", "cora",
                         "--objectives", "val_acc:max,latency_s:min"],
    "nbg-computers-latency": ["--space", "nasbench-graph", "--dataset", "computers",
                              "--objectives", "val_acc:max,latency_s:min"],
    "fcnet-naval-size": ["--space", "fcnet", "--dataset", "naval_propulsion",
                         "--objectives", "val_acc:max,model_size:min"],
    "mobilenet-macs": ["--space", "mobilenet", "--objectives", "val_acc:max,macs_m:min"],
}
FIGURES = ("hypervolume_val", "hypervolume_test", "igd_plus_val")


def run_case(name: str, out: Path, methods: str, seeds: int, extra: list[str]) -> Path:
    """`dsmnas compare` of one case, unless its runs.csv already has every run."""
    folder = out / name
    runs = folder / "runs.csv"
    want = len(methods.split(",")) * seeds
    if runs.exists() and (pd.read_csv(runs)["status"] == "ok").sum() >= want:
        return folder
    cmd = [sys.executable, "-m", "dsmnas.experiments.cli", "compare", "--methods", methods,
           "--seeds", str(seeds), "--population", str(seeds), "--max-concurrent", "2",
           *CASES[name], *extra, "--out", str(folder)]
    if runs.exists():
        cmd.append("--resume")
    print("$ " + " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)
    return folder


def ceiling(name: str) -> float:
    """The true front's validation hypervolume of a case (NaN where the space has none)."""
    from dsmnas.envs import EnvConfig
    from dsmnas.envs.benchmarks import make_benchmark
    from dsmnas.envs.objectives import true_front

    args = CASES[name]
    pairs = dict(zip(args[::2], args[1::2]))
    space = pairs.get("--space", "nb201")
    kwargs = {"space": space, "objectives": pairs["--objectives"], "seed": 0}
    if "--dataset" in pairs:
        kwargs["dataset"] = pairs["--dataset"]
    if "--table" in pairs:
        kwargs["table"] = pairs["--table"]
    if space == "mobilenet" or space == "fcnet":
        return math.nan
    bench = make_benchmark(EnvConfig(**kwargs))
    front = true_front(bench.objectives, bench.objective_scale, bench.limits)
    return math.nan if front is None else bench.objectives.hypervolume(front)


def _cell(mean, std, p=math.nan) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{mean:.4f} ± {std:.4f}"
    if not math.isnan(p):
        text += f" (p {p:.2g})"
    return text


def case_table(name: str, folder: Path) -> str:
    summary = pd.read_csv(folder / "summary.csv")
    summary = summary.sort_values("hypervolume_val_mean", ascending=False)
    columns = [f for f in FIGURES if f"{f}_mean" in summary]
    lines = [f"### {name}", "",
             f"`{' '.join(CASES[name])}`; true front's hypervolume (val): "
             f"{ceiling(name):.4f}", "",
             "| method | runs | " + " | ".join(columns) + " | queries |",
             "|---|---|" + "---|" * len(columns) + "---|"]
    for row in summary.itertuples():
        cells = [_cell(getattr(row, f"{f}_mean"), getattr(row, f"{f}_std"),
                       getattr(row, f"{f}_p", math.nan)) for f in columns]
        lines.append(f"| {row.method} | {row.n_ok} | " + " | ".join(cells)
                     + f" | {row.queries_mean:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--ppo-cases", default="nb201-cifar10-latency,nb201-cifar10-params",
                   help="cases in which ppo-flat runs too ('all' for every case)")
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--out", default="runs/objectives")
    p.add_argument("--set", action="append", default=[],
                   help="extra `dsmnas compare` arguments, e.g. --set=--max-concurrent=1")
    args = p.parse_args()
    out = Path(args.out)
    tables = []
    for name in args.cases.split(","):
        methods = args.methods.split(",")
        if args.ppo_cases != "all" and name not in args.ppo_cases.split(","):
            methods = [m for m in methods if m != "ppo-flat"]
        extra = [a for item in args.set for a in item.split("=", 1)]
        if name == "mobilenet-macs":
            extra += ["--predictor", str(PREDICTOR)]
        folder = run_case(name, out, ",".join(methods), args.seeds, extra)
        tables.append(case_table(name, folder))
        (out / "objectives.md").write_text("\n".join(tables))
        print(tables[-1], flush=True)


if __name__ == "__main__":
    main()
