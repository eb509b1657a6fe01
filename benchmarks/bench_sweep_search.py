"""What Tune's scheduler and searcher save: the 81-configuration NAS-Bench-201 sweep three ways.

How to run:  python benchmarks/bench_sweep_search.py [--table ../shared/data/nb201/nb201.csv.gz]
             [--out runs/sweep-search] [--samples 27] [--seeds 50]

The space of the sweep behind `dsm-tuned` (K 2,4,8 x M 2,3,4 x entropy 2.5e-4,7.5e-4,2.5e-3 x
lr 3e-3,1e-2,3e-2 = 81 configurations), the paper's protocol (table, 25,000 simulated s per
search), validation accuracy only, on seeds 100..100+S-1 (S = `--seeds`, each configuration
one population trial of all of them), chosen three ways with `dsmnas sweep`:

- `grid`: every configuration to its whole budget;
- `asha`: the same grid under ASHA (`--scheduler asha`: milestones at 1/9, 1/3 and all of the
  budget, 1 in 3 goes on);
- `optuna-asha`: Optuna's TPE drawing `--samples` configurations, with ASHA.

Each pick (the configuration with the best mean validation accuracy among those that ran
their whole budget), and the paper's setting K4-M4-ent0.00075-lr0.01 for reference, is then
run on fresh seeds 200..249 (`--fresh`), and the script prints per way: the pick, its
validation accuracy on the tuning seeds and on the fresh ones, the Welch p-value of its
fresh-seed accuracy against the grid's pick, and the compute the way spent (total queries
over every run, stopped ones included; `sweep.md`'s figure). A run
whose `sweep.csv` is already in `--out` is not run again, so the script can be stopped and
restarted; `DIR/sweep-search.md` gets the table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

SHARED = Path(__file__).resolve().parents[2] / "shared"
PAPER = "K4-M4-ent0.00075-lr0.01"
"""The paper's NAS-Bench-201 setting, one of the 81."""
SPACE = ["--K", "2,4,8", "--M", "2,3,4", "--entropy", "2.5e-4,7.5e-4,2.5e-3",
         "--lr", "3e-3,1e-2,3e-2"]


def sweep(out: Path, args: list[str]) -> Path:
    """`dsmnas sweep ARGS --out OUT`, unless OUT already has its sweep.csv."""
    if not (out / "sweep.csv").exists():
        cmd = [sys.executable, "-m", "dsmnas.experiments.cli", "sweep", *args, "--out", str(out)]
        print("$ " + " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True)
    return out


def summary(out: Path) -> dict:
    """The pick, its tuning-seed accuracy and the way's compute, from a sweep's outputs."""
    table = pd.read_csv(out / "sweep.csv")
    ok = table[table["status"] == "ok"]
    means = ok.groupby("label")["val_acc"].agg(["mean", "std", "count"])
    best = means["mean"].idxmax()
    row = ok[ok["label"] == best].iloc[0]
    return {"pick": best, "K": int(row["K"]), "M": int(row["M"]), "entropy": row["entropy"],
            "lr": row["lr"], "tune_val": means.loc[best, "mean"],
            "tune_std": means.loc[best, "std"], "queries": float(table["queries"].sum()),
            "configurations": table["label"].nunique(),
            "whole": int(ok["label"].nunique()),
            "stopped": int(table.loc[table["status"] == "stopped", "label"].nunique())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(SHARED / "data/nb201/nb201.csv.gz"))
    p.add_argument("--out", default="runs/sweep-search")
    p.add_argument("--samples", type=int, default=27)
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--fresh", type=int, default=200, help="first fresh seed (50 of them)")
    args = p.parse_args()
    out = Path(args.out)
    common = [*SPACE, "--seeds", str(args.seeds), "--first-seed", "100", "--population",
              str(args.seeds), "--table", args.table, "--budget", "25000"]
    ways = {
        "grid": sweep(out / "grid", common),
        "asha": sweep(out / "asha", [*common, "--scheduler", "asha"]),
        "optuna-asha": sweep(out / "optuna-asha", [*common, "--search-alg", "optuna",
                                                   "--num-samples", str(args.samples),
                                                   "--draw-seed", "0", "--scheduler", "asha"]),
    }
    rows = {name: summary(path) for name, path in ways.items()}
    paper = {"pick": PAPER, "K": 4, "M": 4, "entropy": 7.5e-4, "lr": 0.01}
    fresh = {}
    for r in [*rows.values(), paper]:
        if r["pick"] in fresh:
            continue
        lr = repr(float(r["lr"])) if r["lr"] == r["lr"] else None
        path = sweep(out / f"fresh-{r['pick']}",
                     ["--K", str(r["K"]), "--M", str(r["M"]),
                      "--entropy", repr(float(r["entropy"])), *(["--lr", lr] if lr else []),
                      "--seeds", "50", "--first-seed", str(args.fresh), "--population", "50",
                      "--table", args.table, "--budget", "25000"])
        fresh[r["pick"]] = pd.read_csv(path / "sweep.csv")["val_acc"].astype(float)
    grid_fresh = fresh[rows["grid"]["pick"]]
    full = rows["grid"]["queries"]
    lines = ["| way | configurations run (whole / stopped) | pick | val, seeds 100–"
             f"{99 + args.seeds} | val, fresh seeds {args.fresh}–{args.fresh + 49} | p vs grid's "
             "pick | compute (queries) | share of the grid's |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        v = fresh[r["pick"]]
        pval = (stats.ttest_ind(v, grid_fresh, equal_var=False).pvalue
                if r["pick"] != rows["grid"]["pick"] else float("nan"))
        lines.append(
            f"| {name} | {r['configurations']} ({r['whole']} / {r['stopped']}) | {r['pick']} | "
            f"{r['tune_val']:.2f} ± {r['tune_std']:.2f} | {v.mean():.2f} ± {v.std(ddof=1):.2f} "
            f"| {'–' if pval != pval else f'{pval:.2f}'} | {r['queries']:,.0f} | "
            f"{r['queries'] / full:.1%} |")
    v = fresh[PAPER]
    lines.append(f"| the paper's setting (not chosen) | – | {PAPER} | – | {v.mean():.2f} ± "
                 f"{v.std(ddof=1):.2f} | "
                 f"{stats.ttest_ind(v, grid_fresh, equal_var=False).pvalue:.2f} | – | – |")
    text = "\n".join(lines) + "\n"
    (out / "sweep-search.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
