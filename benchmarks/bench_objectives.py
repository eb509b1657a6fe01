"""Several objectives on every benchmark: DSM-NAS's multi-objective forms against the baselines.

How to run:  python benchmarks/bench_objectives.py [--cases nb201-cifar10-latency,...]
             [--seeds 30] [--out runs/objectives] [--methods dsm,dsm-hv,random,...]

Each case is one `dsmnas compare --objectives ...` per method, at the space's default budget
(MobileNet-like: 1,000 queries, below), seeds 0..S-1 (S = `--seeds`), DSM-NAS and its variants
in population mode:

- NAS-Bench-201 (the shared table, the paper's 25,000 s budget): validation accuracy vs
  `latency_s` and vs `params_mb`, on cifar10, cifar100 and ImageNet16-120; cifar10 vs both
  (three objectives); and cifar10 vs latency over 4 parallel workers (the 25,000 s as a
  makespan), DSM-NAS as `dsm-sync` and `dsm-async` (`CASE_METHODS`);
- NAS-Bench-Graph: cora and computers, vs `latency_s`;
- FCNet: naval_propulsion, the reward (-10 log10 validation loss, dB) vs `model_size`;
- MobileNet-like: OFA's accuracy predictor (../shared/models/ofa) vs `macs_m`, 1,000 queries
  (DyNAS-T's trajectories, `benchmarks/dynast_trajectories.py`, have 361-554 evaluations).

A case whose `runs.csv` already holds every run is not run again (so the script can be
stopped and restarted; each method runs in its own folder `DIR/<case>/<method>`, and
`DIR/<case>/` gets the combined report: summary.md, fronts.png, hypervolume_val.png);
`ppo-flat`, the slowest method by far (RLlib PPO, about 25 s a search on 2 cores), runs only
in the cases `--ppo-cases` names (NAS-Bench-201's by default). `DIR/objectives-<cases>.md`
gets one table per case: per method, mean ± std over the seeds of the front's hypervolume on
validation and on test (NAS-Bench-201: the front re-scored with the 200-epoch test accuracy;
reports only) and IGD+ to the true front where the space knows it, with Welch's p against
`dsm` (`dsm-sync` over workers), and the true front's hypervolume (the ceiling of the
validation figure) where the space knows it.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

SHARED = Path(__file__).resolve().parents[2] / "shared"
TABLE = SHARED / "data/nb201/nb201.csv.gz"
PREDICTOR = SHARED / "models/ofa/acc_predictor.pth"
METHODS = "dsm,dsm-hv,random,evolution,local,nsga2,ppo-flat"


def _nb201(dataset: str, *metrics: str) -> list[str]:
    return ["--table", str(TABLE), "--dataset", dataset, "--budget", "25000",
            "--objectives", ",".join(["val_acc:max", *(f"{m}:min" for m in metrics)])]


CASES: dict[str, list[str]] = {
    **{f"nb201-{d}-{m.split('_')[0]}": _nb201(d, m)
       for d in ("cifar10", "cifar100", "ImageNet16-120") for m in ("latency_s", "params_mb")},
    "nbg-cora-latency": ["--space", "nasbench-graph", "--dataset", "cora",
                         "--objectives", "val_acc:max,latency_s:min"],
    "nbg-computers-latency": ["--space", "nasbench-graph", "--dataset", "computers",
                              "--objectives", "val_acc:max,latency_s:min"],
    "fcnet-naval-size": ["--space", "fcnet", "--dataset", "naval_propulsion",
                         "--objectives", "val_acc:max,model_size:min"],
    "nb201-cifar10-latency-params": _nb201("cifar10", "latency_s", "params_mb"),
    # over 4 parallel workers: the same budget as a makespan (DSM-NAS as dsm-sync, dsm-async)
    "nb201-cifar10-latency-w4": [*_nb201("cifar10", "latency_s"), "--workers", "4"],
    # 1,000 queries, not the space's 10,000: DyNAS-T's trajectories have 361-554 evaluations,
    # and 10,000 OFA-predictor queries take about 100 s per search on 2 cores
    "mobilenet-macs": ["--space", "mobilenet", "--budget-queries", "1000",
                       "--objectives", "val_acc:max,macs_m:min"],
}
FIGURES = ("hypervolume_val", "hypervolume_test", "igd_plus_val")
CASE_METHODS = {"nb201-cifar10-latency-w4": "dsm-sync,dsm-async,random,evolution,local,nsga2,"
                                            "ppo-flat"}
"""Cases with their own methods (`dsm` and `dsm-hv` run on one worker only)."""
DSM_FORMS = ("dsm", "dsm-hv", "dsm-sync", "dsm-async")
ANYTIME = {"nb201-cifar10-latency": (0.1, 0.25, 0.5, 1.0),
           "nb201-cifar10-latency-w4": (0.1, 0.25, 0.5, 1.0)}
"""Cases whose table also gives the validation hypervolume so far at these fractions of the
budget (one worker against four)."""


def run_method(name: str, method: str, out: Path, seeds: int, extra: list[str]) -> Path:
    """`dsmnas compare` of one method in one case (its own folder, so that a method can be
    added later), unless its runs.csv already has every run."""
    folder = out / name / method
    runs = folder / "runs.csv"
    if runs.exists() and (pd.read_csv(runs)["status"] == "ok").sum() >= seeds:
        return folder
    cmd = [sys.executable, "-m", "dsmnas.experiments.cli", "compare", "--methods", method,
           "--seeds", str(seeds), "--population", str(seeds), "--max-concurrent", "2",
           *CASES[name], *extra, "--out", str(folder)]
    if runs.exists():
        cmd.append("--resume")
    print("$ " + " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)
    return folder


def benchmark_of(name: str):
    """The benchmark of a case (its objectives, normalisation and true front)."""
    from dsmnas.envs import EnvConfig
    from dsmnas.envs.benchmarks import make_benchmark

    args = CASES[name]
    pairs = dict(zip(args[::2], args[1::2]))
    kwargs = {"space": pairs.get("--space", "nb201"), "objectives": pairs["--objectives"],
              "seed": 0}
    for flag, key in (("--dataset", "dataset"), ("--table", "table")):
        if flag in pairs:
            kwargs[key] = pairs[flag]
    if kwargs["space"] == "mobilenet":
        kwargs["predictor"] = str(PREDICTOR)
    return make_benchmark(EnvConfig(**kwargs))


@dataclass
class CaseRuns:
    """What a case's method folders hold, read once (`combine`)."""

    runs: pd.DataFrame
    histories: dict[tuple[str, int], pd.DataFrame]
    bench: Any
    ceiling: float
    """The true front's validation hypervolume (NaN where the space has no true front)."""
    reference: str
    """The DSM-NAS form the p-values are against: the first of `DSM_FORMS` compared."""


def combine(name: str, out: Path, folders: list[Path]) -> CaseRuns:
    """The case's methods in one report (`DIR/<case>/summary.md`, `fronts.png`,
    `hypervolume_val.png`, Welch p against the first DSM-NAS form), and what it read."""
    from dsmnas.envs.objectives import true_front
    from dsmnas.experiments import report, report_fronts, report_objectives

    bench = benchmark_of(name)
    objectives = bench.objectives
    runs = pd.concat([pd.read_csv(f / "runs.csv") for f in folders], ignore_index=True)
    histories, fronts = {}, {}
    for f in folders:
        mine = pd.read_csv(f / "runs.csv")
        histories.update(report.load_histories(mine, f / "histories"))
        fronts.update(report_fronts.load_fronts(mine, f / report.FRONTS))
    scale = bench.objective_scale
    truth = None if scale is None or scale.every is None else true_front(
        objectives, scale, bench.limits)
    reference = next(m for m in DSM_FORMS if m in set(runs["method"]))
    report_objectives.write_report(
        runs, histories, out / name, objectives, bench.limits, reference=reference, title=name,
        notes=[f"`{' '.join(CASES[name])}`; seeds {runs['seed'].min()}–{runs['seed'].max()}; "
               f"each method from its own `dsmnas compare` (benchmarks/bench_objectives.py)."],
        fronts=fronts, true_front=truth)
    return CaseRuns(runs, histories, bench,
                    math.nan if truth is None else objectives.hypervolume(truth), reference)


def _cell(mean, std, p=math.nan) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{mean:.4f} ± {std:.4f}"
    if not math.isnan(p):
        text += f" (p {p:.2g})"
    return text


def case_table(name: str, out: Path, folders: list[Path]) -> str:
    from dsmnas.experiments import report_objectives

    case = combine(name, out, folders)
    runs, ceiling = case.runs, case.ceiling
    summary = report_objectives.summarize(runs, case.reference)
    summary = summary.sort_values("hypervolume_val_mean", ascending=False)
    queries = runs.groupby("method")["queries"].mean()
    columns = [f for f in FIGURES if f"{f}_mean" in summary]
    lines = [f"### {name}", "",
             f"`{' '.join(CASES[name])}`; true front's hypervolume (val): "
             + ("–" if math.isnan(ceiling) else f"{ceiling:.4f}"), "",
             "| method | runs | " + " | ".join(columns) + " | queries |",
             "|---|---|" + "---|" * len(columns) + "---|"]
    for row in summary.itertuples():
        n = int((runs[(runs["method"] == row.method)]["status"] == "ok").sum())
        cells = [_cell(getattr(row, f"{f}_mean"), getattr(row, f"{f}_std"),
                       getattr(row, f"{f}_p", math.nan)) for f in columns]
        lines.append(f"| {row.method} | {n} | " + " | ".join(cells)
                     + f" | {queries[row.method]:.0f} |")
    if name in ANYTIME:
        lines += ["", "Validation hypervolume so far, by simulated time:", "",
                  anytime_table(name, case)]
    return "\n".join(lines) + "\n"


def anytime_table(name: str, case: CaseRuns) -> str:
    """Per method, mean ± std over the seeds of the validation hypervolume of the feasible
    queries finished by each fraction `ANYTIME[name]` of the case's simulated budget, Welch's
    p against the case's DSM-NAS form."""
    import numpy as np

    from dsmnas.envs.objectives import anytime_hypervolume
    from dsmnas.experiments import report

    args = CASES[name]
    budget = float(args[args.index("--budget") + 1])
    grid = budget * np.array(ANYTIME[name])
    lines = ["| method | " + " | ".join(f"{f:.0%} ({t:,.0f} s)" for f, t in
                                        zip(ANYTIME[name], grid)) + " |",
             "|---|" + "---|" * len(grid)]
    rows: dict[str, list[np.ndarray]] = {}
    for (method, _seed), h in case.histories.items():
        rows.setdefault(method, []).append(
            anytime_hypervolume(h, case.bench.objectives, case.bench.limits, grid))
    curves = {m: np.vstack(r) for m, r in rows.items()}
    for method, c in curves.items():
        p = [math.nan if method == case.reference
             else report.welch_p(c[:, k], curves[case.reference][:, k]) for k in range(len(grid))]
        lines.append(f"| {method} | " + " | ".join(
            _cell(*cell) for cell in zip(c.mean(axis=0), c.std(axis=0, ddof=1), p)) + " |")
    return "\n".join(lines) + "\n"


def headline(out: Path, names: list[str], methods: list[str]) -> str:
    """One row per case: each method's mean test hypervolume (validation where the data has
    no test accuracy), the best in bold, and whether a DSM-NAS form (`DSM_FORMS`) leads, with
    Welch's p between the best DSM-NAS form and the best other method."""
    from dsmnas.experiments import report

    lines = ["| case | HV | " + " | ".join(methods) + " | DSM-NAS form first? |",
             "|---|---|" + "---|" * (len(methods) + 1)]
    for name in names:
        folders = [out / name / m for m in methods if (out / name / m / "runs.csv").exists()]
        if not folders:
            continue
        runs = report.finished(pd.concat([pd.read_csv(f / "runs.csv") for f in folders]))
        figure = ("hypervolume_test" if runs["hypervolume_test"].notna().all()
                  else "hypervolume_val")
        means = runs.groupby("method")[figure].mean()
        best = means.idxmax()
        cells = ["–" if m not in means else
                 (f"**{means[m]:.4f}**" if m == best else f"{means[m]:.4f}") for m in methods]
        ours = means[[m for m in DSM_FORMS if m in means]].idxmax()
        other = means.drop(list(DSM_FORMS), errors="ignore").idxmax()
        p = report.welch_p(runs.loc[runs["method"] == ours, figure],
                           runs.loc[runs["method"] == other, figure])
        lead = means[ours] - means[other]
        verdict = (f"yes: {ours} {lead:+.4f} vs {other}" if lead > 0
                   else f"no: {ours} {lead:+.4f} vs {other}")
        lines.append(f"| {name} | {figure.split('_')[1]} | " + " | ".join(cells)
                     + f" | {verdict}, p {p:.2g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--ppo-cases", default=",".join(n for n in CASES if n.startswith("nb201")),
                   help="cases in which ppo-flat runs too ('all' for every case; default: the "
                        "NAS-Bench-201 ones)")
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--out", default="runs/objectives")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: the tables from what DIR holds, and the headline table")
    p.add_argument("--set", action="append", default=[],
                   help="extra `dsmnas compare` arguments, e.g. --set=--max-concurrent=1")
    args = p.parse_args()
    out = Path(args.out)
    tables = []
    for name in args.cases.split(","):
        methods = CASE_METHODS.get(name, args.methods).split(",")
        if (not args.report_only and args.ppo_cases != "all"
                and name not in args.ppo_cases.split(",")):
            methods = [m for m in methods if m != "ppo-flat"]
        extra = [a for item in args.set for a in item.split("=", 1)]
        if name == "mobilenet-macs":
            extra += ["--set", f"env.predictor={PREDICTOR}"]
        if args.report_only:
            folders = [out / name / m for m in methods if (out / name / m / "runs.csv").exists()]
            if not folders:
                continue
        else:
            folders = [run_method(name, m, out, args.seeds, extra) for m in methods]
        tables.append(case_table(name, out, folders))
        (out / f"objectives-{args.cases.replace(',', '+')[:60]}.md").write_text(
            "\n".join(tables))
        print(tables[-1], flush=True)
    if args.report_only:  # one headline table per list of methods
        names = args.cases.split(",")
        tables = [headline(out, [n for n in names if n not in CASE_METHODS],
                           args.methods.split(","))]
        tables += [headline(out, [n], CASE_METHODS[n].split(",")) for n in names
                   if n in CASE_METHODS]
        table = "\n".join(tables)
        (out / "objectives-headline.md").write_text(table)
        print(table)


if __name__ == "__main__":
    main()
