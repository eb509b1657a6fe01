"""`dsmnas ablate NAME`: the paper's ablations as named comparisons over seeds.

Each ablation is a list of variants (label, method, method settings, env settings) run by
`experiments.compare` (so every output of `dsmnas compare` is written too), plus its own
table `ablation.md` and plot `ablation.png`:

- `update`  (Fig. 7): DSM-NAS with / without subspace update, random search in the whole
  space, in DSM-NAS's final mined subspaces, and with subspace update;
- `reward`  (Fig. 8a): reward = improvement R(b|a) vs absolute val(b), with the number of
  distinct subspace centers each search explored (K initial + distinct accepted);
- `graph`   (Fig. 8b): GNN over the subspace graph vs two FC layers per node;
- `K`       (Fig. 9a): the space's K grid (NAS-Bench-201: {1, 2, 4, 8, 16} against K = 4;
  mobilenet, the paper's: {1, 5, 10, 15, 20} against K = 10, M = 3);
- `M`       (Fig. 9b): the space's M grid (NAS-Bench-201: {1, 2, 3, 4, 6}, L = 6, against
  M = 4; mobilenet, the paper's: {1, 3, 5, 10, 20} against M = 3, K = 10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dsmnas.envs.objectives import FIGURES  # noqa: E402
from dsmnas.experiments import report  # noqa: E402
from dsmnas.experiments.settings import ABLATIONS, variants  # noqa: E402

def centers_explored(history: pd.DataFrame, K: int) -> int:
    """Distinct subspace centers a search had: the K initial ones plus every distinct
    architecture that replaced a center."""
    accepted = history.loc[history["accepted"].astype(bool), "arch"]
    return K + accepted.nunique()


def ablation_table(
    name: str, runs: pd.DataFrame, histories: dict[tuple[str, int], pd.DataFrame], K: int,
    space: str = "nb201",
) -> pd.DataFrame:
    """Per variant: n, mean ± std of val and test accuracy (with `--objectives`, of the
    fronts' validation and test hypervolume first) and, for `reward`, the mean number of
    centers explored, in the ablation's order."""
    done = report.finished(runs)
    rows = []
    for spec in variants(name, space):
        sub = done[done["method"] == spec.label]
        row = {"variant": spec.label, "n": len(sub)}
        for col in [*hypervolume_columns(done), *report.accuracy_columns(done)]:
            row[col] = sub[col].mean()
            row[f"{col}_std"] = sub[col].std(ddof=1)
        if name == "K":
            row["K"] = spec.env["K"]
        elif name == "M":
            row["M"] = spec.env["M"]
        if name == "reward":
            k = spec.env.get("K", K)
            explored = [centers_explored(histories[(spec.label, int(s))], k)
                        for s in sub["seed"] if (spec.label, int(s)) in histories]
            row["centers_explored"] = float(np.mean(explored)) if explored else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def hypervolume_columns(runs: pd.DataFrame) -> list[str]:
    """The fronts' hypervolume columns that have values (with `--objectives`)."""
    return [c for c in FIGURES if c in runs and runs[c].notna().any()]


def ablation_markdown(name: str, table: pd.DataFrame) -> str:
    cols = [c for c in table.columns if c.endswith("acc") or c.startswith("test_acc_")
            or c in FIGURES]
    cols = [c for c in cols if not c.endswith("_std")]
    header = ["variant", "n", *cols] + (["centers explored"] if "centers_explored" in table else [])
    lines = [f"# Ablation `{name}`: {ABLATIONS[name][0]}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in table.iterrows():
        cells = [r["variant"], str(int(r["n"]))]
        cells += [("–" if not r["n"] else f"{r[c]:.4f} ± {r[c + '_std']:.4f}"
                   if c in FIGURES else f"{r[c]:.2f} ± {r[c + '_std']:.2f}") for c in cols]
        if "centers_explored" in table:
            cells.append(f"{r['centers_explored']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_ablation(name: str, table: pd.DataFrame, path: str | Path) -> Path:
    """K / M: mean ± std accuracy (with `--objectives`, hypervolume) against the swept value;
    others: one bar per variant."""
    cols = ([c for c in FIGURES if c in table]
            or [c for c in table.columns if c.startswith("test_acc_") and not c.endswith("_std")]
            or ["val_acc"])
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.6), squeeze=False)
    for ax, col in zip(axes[0], cols):
        mean = table[col].to_numpy(dtype=float)
        std = np.nan_to_num(table[f"{col}_std"].to_numpy(dtype=float))  # one seed: no std
        if name in ("K", "M"):
            xs = table[name].tolist()
            ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3)
            ax.set_xscale("log", base=2) if name == "K" else None
            ax.set_xticks(xs, [str(x) for x in xs])
            ax.set_xlabel(name)
        else:
            xs = np.arange(len(table))
            ax.bar(xs, mean, yerr=std, capsize=3, color="tab:blue", alpha=0.8)
            ax.set_xticks(xs, table["variant"], rotation=30, ha="right")
            finite = mean[np.isfinite(mean)]
            if finite.size:
                pad = max(std.max(), 0.001 if col in FIGURES else 0.1)
                ax.set_ylim(finite.min() - 3 * pad, finite.max() + 2 * pad)
        ax.set_title(col.replace("test_acc_", "test accuracy, ").replace("val_acc", "validation accuracy")
                     .replace("hypervolume_", "hypervolume, "))
        ax.set_ylabel("hypervolume" if col in FIGURES else "accuracy (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"ablation {name}: mean ± std over seeds")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_ablation(name: str, runs: pd.DataFrame, out_dir: str | Path, K: int,
                   histories: dict | None = None, space: str = "nb201") -> Sequence[Path]:
    out = Path(out_dir)
    histories = histories if histories is not None else report.load_histories(runs, out / "histories")
    return write_ablation_table(name, ablation_table(name, runs, histories, K, space), out)


def write_ablation_table(name: str, table: pd.DataFrame, out_dir: str | Path) -> Sequence[Path]:
    """`ablation.csv`, `ablation.md` and `ablation.png` of an `ablation_table` in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "ablation.csv", index=False)
    md = out / "ablation.md"
    md.write_text(ablation_markdown(name, table))
    return md, out / "ablation.csv", plot_ablation(name, table, out / "ablation.png")
