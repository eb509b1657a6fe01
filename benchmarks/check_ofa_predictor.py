"""How well OFA's pretrained predictor ranks measured ImageNet accuracies.

How to run:
    python benchmarks/check_ofa_predictor.py [--predictor PATH] [--data DIR] [--out DIR]
DIR holds DyNAS-T's measured subnets of OFA MobileNetV3 w1.0 (`../shared/data/ofa-dynast/`:
five search trajectories, each row a subnet config, its MACs and its measured top-1 with
weights inherited from the supernet). Every distinct subnet (by config and resolution) is
kept once, with the mean of its measured top-1 where trajectories measured it more than once.
Prints Spearman and Kendall rank correlations and the mean absolute error of the predictor
(trained for the w1.2 supernet, so its absolute values sit above w1.0's), checks that the
MACs of `envs.spaces.mobilenet.macs_m` equal the files' MACs, and writes a scatter plot.

Results to expect: see the README (MobileNet section).
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

SHARED = Path(__file__).resolve().parents[2] / "shared"


def load_measured(folder: Path) -> pd.DataFrame:
    frames = [pd.read_csv(p) for p in sorted(folder.glob("*.csv"))]
    if not frames:
        raise SystemExit(f"no CSV files in {folder}")
    raw = pd.concat(frames, ignore_index=True)
    rows = []
    for config, macs, acc in zip(raw["Sub-network"], raw["MACs"], raw["Top-1 Acc (%)"]):
        arch = ast.literal_eval(config)
        d = arch["d"]
        # slots beyond a unit's depth do not change the network: drop them from the key
        ks = [k for u in range(5) for k in arch["ks"][4 * u: 4 * u + d[u]]]
        e = [x for u in range(5) for x in arch["e"][4 * u: 4 * u + d[u]]]
        rows.append({"key": json.dumps([ks, e, d, arch["r"][0]]), "arch": arch,
                     "macs": macs / 1e6, "top1": acc})
    df = pd.DataFrame(rows)
    return df.groupby("key").agg(arch=("arch", "first"), macs=("macs", "first"),
                                 top1=("top1", "mean"), n=("top1", "size")).reset_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--predictor", default=str(SHARED / "models/ofa/acc_predictor.pth"))
    ap.add_argument("--data", default=str(SHARED / "data/ofa-dynast"))
    ap.add_argument("--out", default="runs/predictor-check")
    args = ap.parse_args()

    from dsmnas.envs.benchmarks.mobilenet import load_ofa_predictor
    from dsmnas.envs.spaces.mobilenet import macs_m

    df = load_measured(Path(args.data))
    model = load_ofa_predictor(args.predictor)
    pred = 100 * model.predict_accuracy(
        [{**a, "r": [a["r"][0]]} for a in df.arch]).numpy()[:, 0]
    ours = np.array([macs_m(a, a["r"][0], 1.0) for a in df.arch])
    rho = stats.spearmanr(pred, df.top1).statistic
    tau = stats.kendalltau(pred, df.top1).statistic
    mae = float(np.mean(np.abs(pred - df.top1)))
    macs_err = float(np.max(np.abs(ours - df.macs)))
    lines = [
        f"{len(df)} distinct subnets ({int(df.n.sum())} rows), measured top-1 "
        f"{df.top1.min():.1f}-{df.top1.max():.1f} %, MACs {df.macs.min():.0f}-{df.macs.max():.0f} M",
        f"Spearman {rho:.3f}  Kendall {tau:.3f}  mean |predicted - measured| {mae:.2f} points "
        f"(predicted mean {pred.mean():.2f}, measured mean {df.top1.mean():.2f})",
        f"MACs: largest |ours - file| = {macs_err:.6f} M",
    ]
    print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "check.md").write_text("\n\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(df.top1, pred, s=4, alpha=0.5)
    ax.set_xlabel("measured ImageNet top-1 (%), w1.0 supernet weights")
    ax.set_ylabel("OFA predictor (w1.2), %")
    ax.set_title(f"Spearman {rho:.3f}, {len(df)} subnets")
    fig.tight_layout()
    fig.savefig(out / "predictor_vs_measured.png", dpi=120)
    print(f"wrote {out}/check.md and predictor_vs_measured.png")


if __name__ == "__main__":
    main()
