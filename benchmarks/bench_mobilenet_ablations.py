"""The paper's MobileNet-like ablations (Fig. 8a, 8b, 9a, 9b) with the OFA predictor (README,
"MobileNet-like ablations").

How to run (from the repository root; ~2 h on 2 cores for the defaults):
    .venv/bin/python benchmarks/bench_mobilenet_ablations.py [--predictor PATH]
        [--seeds 10] [--queries 10000] [--population 5] [--out runs/mobilenet-ablations]
        [--resume] [--from-runs DIR ...]

The four ablations' variants (`experiments.settings.variants(name, "mobilenet")`: reward,
graph, K over {1, 5, 10, 15, 20}, M over {1, 3, 5, 10, 20}) share their reference, DSM-NAS with
the paper's settings (K = 10, M = 3, improvement reward, the GNN): it is run once. All distinct
variants run as one `dsmnas compare` (population mode, the costliest first so that the two
cores finish together) into `OUT/runs`; then each ablation's own outputs (`ablation.md`,
`ablation.csv`, `ablation.png`) go to `OUT/<name>/`, and one table with the paper's figures
beside ours is printed. The paper reports supernet validation accuracy on ImageNet; ours is
OFA's predicted ImageNet top-1 (a different scale), so compare directions, not values.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_PREDICTOR = ROOT.parent / "shared/models/ofa/acc_predictor.pth"
ABLATIONS = ("reward", "graph", "K", "M")
PAPER = {  # the paper's text (Sec. V-C to V-F), supernet validation accuracy on ImageNet
    ("reward", "dsm"): "67.81 ± 0.18 (319 new subspaces)",
    ("reward", "dsm-absolute"): "67.63 ± 0.31 (284 new subspaces)",
    ("graph", "dsm"): "67.81 ± 0.18",
    ("graph", "dsm-nograph"): "67.12 ± 0.46",
    ("K", "dsm-K1"): "worst", ("K", "dsm-K10"): "chosen; K > 10 very similar",
    ("M", "dsm-M3"): "best", ("M", "dsm-M20"): "worst, 63.84",
}


def _key(spec, defaults) -> str:
    """What a variant runs (method, settings, env without the space's own values)."""
    env = {k: v for k, v in spec.env.items() if defaults.get(k) != v}
    return json.dumps([spec.method, spec.settings, env], sort_keys=True)


def plan_variants():
    """(distinct variants to run, {(ablation, label): run label})."""
    from dsmnas.envs.registry import get_spec
    from dsmnas.experiments.settings import MethodSpec, variants

    defaults = dict(get_spec("mobilenet").env_defaults)
    runs: dict[str, MethodSpec] = {}
    label_of: dict[tuple[str, str], str] = {}
    for name in ABLATIONS:
        for spec in variants(name, "mobilenet"):
            key = _key(spec, defaults)
            if key not in runs:
                runs[key] = MethodSpec(spec.label, spec.method, spec.settings, spec.env)
            label_of[(name, spec.label)] = runs[key].label

    def cost(spec):  # rough: the decoder's 1 + 2M decisions, the graph's K nodes
        k = spec.env.get("K", defaults["K"])
        m = spec.env.get("M", defaults["M"])
        return (1 + 2 * m) * (k + 10)

    return sorted(runs.values(), key=cost, reverse=True), label_of


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--predictor", default=str(DEFAULT_PREDICTOR))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--population", type=int, default=5,
                   help="searches per trial; a population's memory grows with its 10,000-step "
                        "episode (~1 GB per search at the end): two trials of 10 exceed 24 GiB")
    p.add_argument("--out", default=str(ROOT / "runs" / "mobilenet-ablations"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--from-runs", nargs="+", metavar="DIR",
                   help="build the tables from these finished compare folders (their runs "
                        "together must cover every variant) instead of running")
    args = p.parse_args()

    import pandas as pd

    from dsmnas.experiments import report
    from dsmnas.experiments.ablate import ablation_table, write_ablation_table
    from dsmnas.experiments.compare import plan_compare, run_compare

    specs, label_of = plan_variants()
    out = Path(args.out)
    plan = plan_compare(specs, args.seeds, env={
        "space": "mobilenet", "predictor": args.predictor, "budget_queries": args.queries},
        population=args.population)
    if args.from_runs:
        parts = [pd.read_csv(Path(d) / "runs.csv") for d in args.from_runs]
        histories = {}
        for d, part in zip(args.from_runs, parts):
            histories.update(report.load_histories(part, Path(d) / "histories"))
        runs = pd.concat(parts, ignore_index=True)
    else:
        runs = run_compare(plan, out / "runs", resume=args.resume)
        histories = report.load_histories(runs, out / "runs" / "histories")
    lines = ["| ablation | variant | seeds | predicted top-1 (%) | new subspaces | paper |",
             "|---|---|---|---|---|---|"]
    for name in ABLATIONS:
        mine = {label: run for (ab, label), run in label_of.items() if ab == name}
        sub = runs[runs["method"].isin(set(mine.values()))]
        frames = [sub[sub["method"] == run].assign(method=label) for label, run in mine.items()]
        renamed = pd.concat(frames, ignore_index=True)
        hist = {(label, seed): histories[(run, seed)] for label, run in mine.items()
                for r, seed in histories if r == run}
        table = ablation_table(name, renamed, hist, K=plan.env.K, space="mobilenet")
        write_ablation_table(name, table, out / name)
        for row in table.to_dict("records"):
            # centers_explored counts the K initial centers too; the paper counts new ones
            explored = (f"{row['centers_explored'] - plan.env.K:.0f}"
                        if "centers_explored" in row else "")
            lines.append(f"| {name} | {row['variant']} | {row['n']} | "
                         f"{row['val_acc']:.2f} ± {row['val_acc_std']:.2f} | {explored} | "
                         f"{PAPER.get((name, row['variant']), '')} |")
    text = "\n".join(lines) + "\n"
    (out / "ablations.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
