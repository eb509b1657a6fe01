"""The `dsmnas` command.

    dsmnas search [--space nb201] [--dataset cifar10] [--table PATH] [--budget S] [--seed N]
                  [-K 4] [-M 4] [--lr 0.01] [--entropy 7.5e-4] [--out DIR] ...
    dsmnas resume DIR                     (continue a killed search from DIR/checkpoint/)
    dsmnas export-nb201 SRC DST
    dsmnas compare / ablate / sweep ...   (see `dsmnas COMMAND --help`)

User errors (bad values, missing files: `envs.errors.ConfigError`) print one line on stderr
and exit with code 2; any other exception is a bug (traceback, exit code 1). A comparison,
ablation or sweep with failed runs writes its reports, then exits with code 3.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import textwrap
import time
import dataclasses
from dataclasses import fields

from dsmnas.envs.config import EnvConfig
from dsmnas.envs.settings import help_of
from dsmnas.trainables.learner import LearnerSettings
from dsmnas.envs.errors import ConfigError, MissingFileError
from dsmnas.trainables import supernet_settings

EXIT_USAGE = 2
_SERVICES: list = []
"""Evaluator services this command started (`_evaluator_service`)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")




def _add_search(sub, specs) -> None:
    p = sub.add_parser("search", help=_COMMANDS["search"][0], description=__doc__)
    e = lambda name: help_of(EnvConfig, name)  # noqa: E731
    p.add_argument("--space", default=EnvConfig.space, help=e("space"))
    p.add_argument("--dataset", default=EnvConfig.dataset, help=e("dataset"))
    p.add_argument("--budget", dest="budget_s", type=float, default=None, help=e("budget_s"))
    p.add_argument("--budget-queries", type=int, default=None, help=e("budget_queries"))
    p.add_argument("--seed", type=int, default=0, help="seed of the search (default: 0)")
    p.add_argument("-K", type=int, default=EnvConfig.K, help=e("K"))
    p.add_argument("-M", type=int, default=EnvConfig.M, help=e("M"))
    p.add_argument("--reward", default=EnvConfig.reward, help=e("reward"))
    _add_limit_options(p)
    _add_space_options(p, specs)
    _evaluator_options(p.add_argument_group("supernet evaluator actors"))
    p.add_argument("--no-update", dest="update_subspaces", action="store_false",
                   help="keep the initial subspaces fixed (ablation)")
    p.add_argument("--init-from", dest="init_centers", nargs="+", default=None,
                   help=e("init_centers"))
    p.add_argument("--cache", dest="cache_queries", action="store_true", help=e("cache_queries"))
    p.add_argument("--charge-init", action="store_true", help=e("charge_init"))
    s = lambda name: help_of(LearnerSettings, name)  # noqa: E731
    p.add_argument("--lr", type=float, default=None,
                   help=s("lr") + "; mobilenet: 3e-4, the paper's")
    p.add_argument("--entropy", type=float, default=None,
                   help=s("entropy") + "; mobilenet: 1e-3, the paper's")
    p.add_argument("--weight-decay", type=float, default=LearnerSettings.weight_decay,
                   help=s("weight_decay"))
    p.add_argument("--batch-size", type=int, default=LearnerSettings.batch_size,
                   help=s("batch_size"))
    p.add_argument("--no-graph", dest="use_graph", action="store_false", help=s("use_graph"))
    p.add_argument("--out", default=None,
                   help="output folder for result.json and history.csv (default: runs/search-<time>)")
    p.add_argument("--checkpoint-every", type=int, default=25, metavar="N",
                   help="save the search's full state to OUT/checkpoint/ every N queries (at "
                        "the first RLlib iteration end past each multiple, up to 16 queries "
                        "later), for `dsmnas resume OUT` (0: never; default: 25)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=_search)


def _add_resume(sub) -> None:
    p = sub.add_parser(
        "resume", help=_COMMANDS["resume"][0],
        description="Rebuild the search from DIR/search.json, restore DIR/checkpoint/, cut "
                    "DIR/history.csv back to the checkpoint and run to the end of the budget: "
                    "the same history and result as an uninterrupted search.",
    )
    p.add_argument("dir", help="the --out folder of the search")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=_resume)


def _resume(args) -> int:

    spec_path = os.path.join(args.dir, "search.json")
    if not os.path.exists(spec_path):
        raise MissingFileError(f"{spec_path} not found: is {args.dir} a `dsmnas search --out`?")
    from dsmnas.trainables.checkpoint import checkpoint_path

    if checkpoint_path(args.dir) is None:
        raise MissingFileError(f"no checkpoint in {args.dir} to resume from")
    with open(spec_path) as f:
        spec = json.load(f)
    try:
        env_cfg = EnvConfig.from_dict(spec["env"])
        learner = LearnerSettings(**spec["learner"])
        every = int(spec["checkpoint_every"])
    except (KeyError, TypeError) as e:
        raise ConfigError(f"{spec_path} is not a search's config ({type(e).__name__}: {e})")
    if getattr(env_cfg, "evaluator_service", None) is not None:  # its actors died with it
        _evaluator_service(env_cfg, spec.get("evaluator_actors", 1), spec.get("gpus_per_evaluator"))
    return _run_recorded(env_cfg, learner, args.dir, every, args.quiet, resume=True)


def _run_recorded(env_cfg, learner, out, checkpoint_every, quiet, resume=False) -> int:
    """Run (or resume) a search that writes OUT/history.csv as it goes and checkpoints."""
    import torch

    from dsmnas.trainables.checkpoint import SearchRecorder
    from dsmnas.trainables.ray_utils import quiet_ray_logs
    from dsmnas.trainables.search import run_search

    quiet_ray_logs()
    recorder = SearchRecorder(out, checkpoint_every, resume=resume)
    # One thread: multi-threaded kernels may sum in another order, and a resumed search must
    # repeat the uninterrupted one bit for bit.
    torch.set_num_threads(1)
    # No Ray instance: one in-process search needs none (`trainables.ray_utils.build_algo`);
    # evaluator actors, when asked for, have started it already.
    result = run_search(env_cfg, learner, progress=None if quiet else print, recorder=recorder)
    path = result.save(out)
    test = result.test_acc
    test_txt = (
        "  test " + "  ".join(f"{k} {v:.2f}" for k, v in test.items())
        if test else "  (no test accuracy in this data)"
    )
    metrics = result.metrics or {}
    if "resolution" in metrics:  # MACs are counted at a resolution: say which
        metric_txt = f"  {metrics['macs_m']:.0f}M MACs at {metrics['resolution']}"
    else:
        metric_txt = "".join(f"  {k} {v:g}" for k, v in metrics.items()
                             if not k.startswith("limit_"))
    print(f"best: {result.arch}  val {result.val_acc:.3f}{metric_txt}{test_txt}")
    visited = result.best_visited
    if visited and visited["arch"] != result.arch:
        print(f"best visited (not a center at the end): {visited['arch']}  val "
              f"{visited['val_acc']:.3f}" + "".join(
                  f"  {k} {v:.2f}" for k, v in (visited["test_acc"] or {}).items()))
    simulated = f"{result.sim_time_s:,.0f} s simulated, " if result.config["budget_s"] else ""
    print(f"{result.queries} queries, {simulated}{result.wall_time_s:.1f} s wall; "
          f"wrote {path}/result.json and history.csv")
    return 0


def _search(args) -> int:
    env_cfg = EnvConfig.from_dict({
        "space": args.space, "dataset": args.dataset, "K": args.K, "M": args.M,
        "budget_s": args.budget_s, "seed": args.seed, "reward": args.reward,
        "update_subspaces": args.update_subspaces,
        "init_centers": tuple(args.init_centers) if args.init_centers else None,
        "cache_queries": args.cache_queries, "charge_init": args.charge_init,
        "budget_queries": args.budget_queries, **_env_options(args),
    })
    from dsmnas.trainables.search import learner_for_space

    given = {k for k in ("lr", "entropy") if getattr(args, k) is not None}
    learner = learner_for_space(env_cfg.space, LearnerSettings(
        lr=LearnerSettings.lr if args.lr is None else args.lr,
        entropy=LearnerSettings.entropy if args.entropy is None else args.entropy,
        weight_decay=args.weight_decay, batch_size=args.batch_size, use_graph=args.use_graph,
    ), given)
    if args.checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0 queries, got {args.checkpoint_every}")
    service = _evaluator_service(env_cfg, args.evaluator_actors, args.gpus_per_evaluator)
    if service is not None:
        env_cfg = dataclasses.replace(env_cfg, evaluator_service=service)
    # Build the env once here so that bad settings fail in a second (before Ray starts,
    # unless evaluator actors were asked for).
    from dsmnas.envs import DSMNASEnv
    from dsmnas.envs.benchmarks.base import budget_text

    env = DSMNASEnv(env_cfg.to_dict())
    if not args.quiet:
        bench, clock = env.benchmark, env.benchmark.clock
        limit = f"; {bench.limit_text()}" if bench.limit_text() else ""
        print(f"data: {bench.source} ({bench.val_metric}); budget "
              f"{budget_text(clock.budget_s, clock.budget_queries)}"
              f"{limit}; K={env_cfg.K} M={env_cfg.M} lr={learner.lr:g} "
              f"entropy={learner.entropy:g} seed={args.seed}")
    out = args.out or os.path.join("runs", time.strftime("search-%Y%m%d-%H%M%S"))
    # The full config first, so that `dsmnas resume OUT` can rebuild this search.
    from dataclasses import asdict

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "search.json"), "w") as f:
        json.dump({"env": env_cfg.to_dict(), "learner": asdict(learner),
                   "checkpoint_every": args.checkpoint_every,
                   "evaluator_actors": args.evaluator_actors,
                   "gpus_per_evaluator": args.gpus_per_evaluator}, f, indent=2)
        f.write("\n")
    return _run_recorded(env_cfg, learner, out, args.checkpoint_every, args.quiet)


def _space_named(argv: list[str]) -> str | None:
    """The value of --space in `argv` (parsed before the parser is built, so that a plug-in
    space's own settings become flags)."""
    for i, arg in enumerate(argv):
        if arg == "--space" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--space="):
            return arg.split("=", 1)[1]
    return None


def _specs(argv: list[str]) -> list:
    """The built-in spaces' specs, and the one `--space` names (a plug-in) if it resolves."""
    from dsmnas.envs.registry import get_spec, space_names

    names = list(space_names())
    named = _space_named(argv)
    if named is not None and named not in names:
        names.append(named)
    specs = []
    for name in names:
        try:
            specs.append(get_spec(name))
        except ConfigError:
            if name == named:
                continue  # reported, as one line, when the settings are checked
            raise
    return specs


_OPTION_DESTS: dict[str, str] = {}
"""argparse dest -> setting name of every space option flag (filled by `_add_space_options`)."""


def _add_space_options(p, specs) -> None:
    """One flag per space setting (`SpaceSpec.settings` fields, `limit_aliases`), grouped by
    space; a flag given is passed as that setting, one not given leaves the space's default."""
    import typing

    seen: set[str] = set()
    for spec in specs:
        fields_ = [f for f in spec.option_fields() if f.name not in seen]
        aliases = [a for a in spec.limit_aliases if a not in seen]
        if not fields_ and not aliases:
            continue
        group = p.add_argument_group(f"{spec.name} space")
        hints = typing.get_type_hints(spec.settings) if spec.settings is not None else {}
        for f in fields_:
            seen.add(f.name)
            dest = f"space_{f.name}"
            _OPTION_DESTS[dest] = f.name
            default = "" if f.default is None else f" (default: {f.default})"
            group.add_argument("--" + f.name.replace("_", "-"), dest=dest,
                               metavar=f.name.upper(), type=_arg_type(hints.get(f.name)),
                               default=argparse.SUPPRESS,
                               help=f"{f.metadata.get('help', '')}{default}")
        for alias in aliases:
            seen.add(alias)
            dest = f"space_{alias}"
            _OPTION_DESTS[dest] = alias
            group.add_argument("--" + alias.replace("_", "-"), dest=dest, type=float,
                               metavar="VALUE", default=argparse.SUPPRESS,
                               help=f"shorthand for --limit {spec.limit_aliases[alias]}=VALUE")


def _arg_type(hint):
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = args[0]
    if kind is bool:
        return _parse_bool
    return kind if kind in (int, float) else str


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _add_limit_options(p) -> None:
    p.add_argument("--limit", dest="limits", action="append", default=None,
                   metavar="METRIC=VALUE",
                   help="keep centers and answers within METRIC <= VALUE, for any metric the "
                        "benchmark provides (nb201: latency_s, params_mb, flops_m; mobilenet: "
                        "macs_m); repeatable")
    p.add_argument("--over-limit", default=None, choices=("query", "penalty"),
                   help=help_of(EnvConfig, "over_limit"))


def _env_options(args) -> dict:
    """The env settings of the space-option and limit flags that were given."""
    out = {name: getattr(args, dest) for dest, name in _OPTION_DESTS.items() if hasattr(args, dest)}
    if getattr(args, "limits", None):
        # added to the space's own limits (mobilenet: macs_m <= 600), the later winning
        from dsmnas.envs.config import parse_limits
        from dsmnas.envs.registry import get_spec

        defaults = dict(get_spec(args.space).env_defaults.get("limits", {}))
        out["limits"] = {**defaults, **parse_limits(list(args.limits))}
    if getattr(args, "over_limit", None) is not None:
        out["over_limit"] = args.over_limit
    if getattr(args, "workers", None) is not None:
        out["workers"] = args.workers
    return out


def _evaluator_options(p) -> None:
    """--evaluator-actors / --gpus-per-evaluator (search, fit-predictor, compare, ablate,
    sweep; the latter three take the checkpoint as --set env.checkpoint=PATH)."""
    p.add_argument("--evaluator-actors", type=int, default=0, metavar="N",
                   help="serve the supernet from N Ray actors, started once by this command "
                        "and shared by all its searches (GPUs when the cluster has them, else "
                        "CPUs; default: 0, evaluate in-process)")
    p.add_argument("--gpus-per-evaluator", type=float, default=None, metavar="G",
                   help="GPUs per evaluator actor, fractions allowed (default: the cluster's "
                        "GPUs shared evenly)")


def _serve_trials(env: dict, sets, actors: int | None, gpus: float | None,
                  address: str | None) -> list[str]:
    """Start the evaluator actors that every trial shares (when asked for) and add their
    name to the trials' env settings (`sets`, env.KEY=VALUE items, over `env`)."""
    from dsmnas.experiments.compare import split_set

    sets = list(sets or [])
    if not actors and gpus is None:
        return sets
    given = {key: value for target, key, value in map(split_set, sets) if target == "env"}
    cfg = EnvConfig.from_dict({**env, **given})
    name = _evaluator_service(cfg, actors or 0, gpus, address)
    return [*sets, f"env.evaluator_service={name}"]


def _evaluator_service(env_cfg: EnvConfig, actors: int, gpus: float | None,
                       address: str | None = None) -> str | None:
    """Start `actors` supernet evaluator actors for `env_cfg` (none: evaluate in-process);
    the name the env finds them by."""
    if actors < 0:
        raise ConfigError(f"--evaluator-actors must be >= 0, got {actors}")
    if actors == 0:
        if gpus is not None:
            raise ConfigError("--gpus-per-evaluator needs --evaluator-actors N")
        return None
    if getattr(env_cfg, "evaluator", None) != "supernet":
        raise ConfigError("--evaluator-actors serves a supernet: use it with --space mobilenet "
                         "--evaluator supernet")
    if env_cfg.checkpoint is None:
        raise ConfigError("--evaluator-actors needs --checkpoint PATH (`dsmnas train-supernet`)")
    from dsmnas.envs.evaluators.supernet import read_checkpoint

    read_checkpoint(env_cfg.checkpoint)  # a bad path or file fails here, not in an actor
    from dsmnas.envs.evaluators.client import DEFAULT_NAME
    from dsmnas.trainables.evaluator_service import start_evaluators
    from dsmnas.trainables.ray_utils import ensure_ray

    ensure_ray(address)
    # held for the life of the command: Ray ends the actors when their handles are gone
    _SERVICES.append(start_evaluators(env_cfg.checkpoint, n_actors=actors,
                                      gpus_per_actor=gpus, data=env_cfg.data, name=DEFAULT_NAME))
    return DEFAULT_NAME


def _add_train_supernet(sub) -> None:
    supernet_settings.add_train_supernet_parser(sub)


def _add_fit_predictor(sub) -> None:
    p = sub.add_parser(
        "fit-predictor", help=_COMMANDS["fit-predictor"][0],
        description="Score N seeded random subnets with the supernet (in-process, or through "
                    "evaluator actors), fit ofa's accuracy-predictor MLP to them and save it "
                    "for `dsmnas search --space mobilenet --evaluator fitted --predictor OUT`.",
    )
    p.add_argument("--checkpoint", required=True, help="supernet checkpoint (`dsmnas train-supernet`)")
    p.add_argument("--data", default=None, help="images to score on (default: the checkpoint's)")
    p.add_argument("--samples", type=int, default=2000, help="subnets scored (default: 2000)")
    p.add_argument("--epochs", type=int, default=300, help="MLP training epochs (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples and the fit (default: 0)")
    p.add_argument("--out", required=True, help="the predictor file to write")
    _evaluator_options(p)
    p.set_defaults(run=_fit_predictor)


def _fit_predictor(args) -> int:
    from dsmnas.trainables.fit_predictor import fit_predictor

    cfg = EnvConfig(space="mobilenet", evaluator="supernet", checkpoint=args.checkpoint,
                    data=args.data)
    service = _evaluator_service(cfg, args.evaluator_actors, args.gpus_per_evaluator)
    if service is None:
        from dsmnas.envs.evaluators.supernet import SubnetEvaluator

        evaluator = SubnetEvaluator(args.checkpoint, data=args.data)
    else:
        from dsmnas.envs.evaluators.client import EvaluatorClient

        evaluator = EvaluatorClient.connect(service)
    metrics = fit_predictor(evaluator, args.samples, args.out, seed=args.seed,
                            epochs=args.epochs, log=print)
    print(f"held-out Spearman {metrics['held_out_spearman']:.3f}, RMSE "
          f"{metrics['held_out_rmse']:.2f} points ({metrics['n_held_out']} subnets); "
          f"scoring {metrics['eval_time_s']:.0f} s, fit {metrics['fit_time_s']:.0f} s; wrote {args.out}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export-nb201", help=_COMMANDS["export-nb201"][0])
    p.add_argument("src", help="NAS-Bench-201 .pth, NATS-Bench tss .pickle.pbz2 or directory")
    p.add_argument("dst", help="output table (.csv or .csv.gz)")
    p.set_defaults(run=_export)


def _export(args) -> int:
    from dsmnas.envs.benchmarks.official import export_table

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} architectures", end="", file=sys.stderr, flush=True)

    frame = export_table(args.src, args.dst, progress=progress)
    print(file=sys.stderr)
    print(f"wrote {len(frame)} rows to {args.dst}")
    return 0


def _add_compare(sub, specs) -> None:
    from dsmnas.trainables.methods import describe_methods

    p = sub.add_parser(
        "compare",
        help=_COMMANDS["compare"][0],
        description=(
            "Run every (method, seed) as one Ray Tune trial; write to DIR:\n"
            "  runs.csv                       one row per run (rewritten as runs finish)\n"
            "  histories/<method>-<seed>.csv  each run's queries\n"
            "  summary.md, summary.csv        per method: mean ± std of val and test accuracy,\n"
            "                                 Welch t-test p-values against dsm, failed runs\n"
            "  anytime_val.png, test_acc.png  best-so-far val accuracy vs simulated time;\n"
            "                                 final test accuracy per method and dataset"
        ),
        epilog=(
            "methods (--methods takes NAME, or LABEL=NAME for a variant with its own --set "
            "settings):\n" + describe_methods() + "\n\nexample:\n"
            "  dsmnas compare --methods dsm,nograph=dsm --set nograph.use_graph=false \\\n"
            "                 --seeds 10 --table nb201.csv.gz --out runs/cmp"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--methods", required=True,
                   help="comma-separated method names (see below), e.g. dsm,random")
    _add_run_options(p, specs)
    p.set_defaults(run=_compare)


def _setting_flag(p, cls, name: str, **kw) -> None:
    """`--NAME` for field `name` of settings class `cls`: its type, default and help."""
    import typing

    f = next(f for f in fields(cls) if f.name == name)
    hint = typing.get_type_hints(cls)[name]
    p.add_argument("--" + name.replace("_", "-"), type=_arg_type(hint), default=f.default,
                   help=help_of(cls, name), **kw)


def _add_run_options(p, specs) -> None:
    """Options shared by `compare` and `ablate`: seeds, data, budget, output, cluster, retries."""
    e = lambda name: help_of(EnvConfig, name)  # noqa: E731
    from dsmnas.experiments.settings import RunSettings

    run = lambda name, **kw: _setting_flag(p, RunSettings, name, **kw)  # noqa: E731
    run("seeds")
    run("first_seed")
    p.add_argument("--space", default=EnvConfig.space, help=e("space"))
    p.add_argument("--dataset", default=EnvConfig.dataset, help=e("dataset"))
    p.add_argument("--budget", dest="budget_s", type=float, default=None, help=e("budget_s"))
    p.add_argument("--budget-queries", type=int, default=None, help=e("budget_queries"))
    p.add_argument("--workers", type=int, default=None, metavar="N", help=e("workers")
                   + "; for random, evolution and local")
    _add_limit_options(p)
    _add_space_options(p, specs)
    for name in ("out", "address", "max_concurrent", "retries", "population"):
        run(name)
    p.add_argument("--resume", action="store_true",
                   help="--out already holds runs.csv of the same plan: keep its ok runs, run "
                        "only the failed and missing ones, report over all")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a setting of one method (e.g. dsm.lr=0.02), of one method's env "
                        "(dsm.env.K=8), or of every run's env (env.K=8); repeatable")
    _evaluator_options(p)


def _run_env(args) -> dict:
    """The shared env settings of a compare/ablate run's flags."""
    env = {"space": args.space, "dataset": args.dataset, "budget_s": args.budget_s,
           "budget_queries": args.budget_queries, **_env_options(args)}
    return {k: v for k, v in env.items() if v is not None}


def _compare(args) -> int:
    from dsmnas.experiments.compare import plan_compare, run_compare

    # Everything that can be wrong with the input fails here, in a second, before Ray starts.
    plan = plan_compare(
        args.methods, args.seeds, args.first_seed,
        env=_run_env(args),
        sets=_serve_trials(_run_env(args), args.sets, args.evaluator_actors,
                           args.gpus_per_evaluator, args.address),
        population=args.population,
    )
    out = args.out or os.path.join("runs", time.strftime("compare-%Y%m%d-%H%M%S"))
    runs = run_compare(plan, out, address=args.address, max_concurrent=args.max_concurrent,
                       retries=args.retries, resume=args.resume)
    return _exit_code(runs)


def _add_ablate(sub, specs) -> None:
    from dsmnas.experiments.settings import describe_ablations

    p = sub.add_parser(
        "ablate",
        help=_COMMANDS["ablate"][0],
        description="Run a named ablation: every output of `dsmnas compare`, plus "
                    "ablation.md, ablation.csv and ablation.png.",
        epilog="ablations:\n" + describe_ablations(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="which ablation (see below)")
    _add_run_options(p, specs)
    p.set_defaults(run=_ablate)


def _ablate(args) -> int:
    from dsmnas.experiments.ablate import write_ablation
    from dsmnas.experiments.settings import reference, variants
    from dsmnas.experiments.compare import REFERENCE, plan_compare, run_compare

    plan = plan_compare(
        list(variants(args.name, args.space)), args.seeds, args.first_seed,
        env=_run_env(args),
        sets=_serve_trials(_run_env(args), args.sets, args.evaluator_actors,
                           args.gpus_per_evaluator, args.address),
        population=args.population,
    )
    out = args.out or os.path.join("runs", time.strftime(f"ablate-{args.name}-%Y%m%d-%H%M%S"))
    runs = run_compare(plan, out, address=args.address, max_concurrent=args.max_concurrent,
                       retries=args.retries, reference=reference(args.name, args.space) or REFERENCE,
                       resume=args.resume)
    paths = write_ablation(args.name, runs, out, K=plan.env.K, space=plan.env.space)
    print("wrote " + ", ".join(str(p) for p in paths))
    return _exit_code(runs)


def _add_sweep(sub, specs) -> None:
    from dsmnas.experiments.settings import KEYS, SweepSettings

    p = sub.add_parser(
        "sweep",
        help=_COMMANDS["sweep"][0],
        description=(
            "Run every configuration (K, M, entropy[, lr]) x seed as one Ray Tune trial: every\n"
            "output of `dsmnas compare`, plus in DIR:\n"
            "  sweep.csv          one row per trial: K, M, entropy, lr, seed, the result\n"
            "  sweep.md           configurations ranked by mean validation accuracy\n"
            "  sweep_params.png   mean final accuracy (test when the data has it, else val)\n"
            "                     against each swept parameter, ± std\n"
            "  sweep_heatmap.png  K x M mean accuracy, averaged over entropy and seeds\n"
            "The best configuration (highest mean validation accuracy) is printed at the end."
        ),
        epilog=(
            "--random N draws N distinct configurations uniformly from the grid with\n"
            "numpy.random.default_rng(--draw-seed). --set takes env.KEY=VALUE (every run's\n"
            "env) and dsm.KEY=VALUE (every configuration's DSM-NAS setting, e.g. dsm.lr=0.02).\n"
            "A --config YAML file takes the keys\n"
            + textwrap.fill(", ".join(KEYS), 86, initial_indent="  ", subsequent_indent="  ")
            + "\n(flags override it; --set items are added to its `set` list).\n\n"
            "examples:\n"
            "  dsmnas sweep --K 2,4,8 --M 2,3,4 --entropy 5e-4,7.5e-4,1e-3 --seeds 5\n"
            "  dsmnas sweep --config experiments/sweeps/nb201-small.yaml --seeds 1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    h = lambda name: help_of(SweepSettings, name)  # noqa: E731
    for name in ("K", "M", "entropy", "lr"):
        f = next(f for f in fields(SweepSettings) if f.name == name)
        v = {"entropy": "E", "lr": "LR"}.get(name, name)
        p.add_argument(f"--{name}", default=None, metavar=f"{v}1,{v}2,...",
                       help=f.metadata["help"])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--grid", dest="mode", action="store_const", const="grid", default=None,
                      help="every combination (the default)")
    mode.add_argument("--random", dest="samples", type=int, default=None, metavar="N",
                      help="N distinct combinations drawn uniformly (seeded by --draw-seed)")
    p.add_argument("--draw-seed", type=int, default=None, help=h("draw_seed"))
    p.add_argument("--config", default=None, metavar="PATH",
                   help="sweep file (YAML), or NAME for experiments/sweeps/NAME.yaml")
    p.add_argument("--cpus-per-trial", type=float, default=None, help=h("cpus_per_trial"))
    p.add_argument("--gpus-per-trial", type=float, default=None, help=h("gpus_per_trial"))
    _add_run_options(p, specs)
    # None = not given, so that a sweep file's value is kept; the defaults are SweepSettings'
    run_options = argparse.ArgumentParser(add_help=False)
    _add_run_options(run_options, specs)
    p.set_defaults(**dict.fromkeys(vars(run_options.parse_args([]))), run=_sweep)


def _sweep(args) -> int:
    from dsmnas.experiments.sweep import load_sweep_file, plan_sweep, resolve_settings, run_sweep

    flags = {
        "K": args.K, "M": args.M, "entropy": args.entropy, "lr": args.lr,
        "mode": "random" if args.samples is not None else args.mode, "samples": args.samples,
        "draw_seed": args.draw_seed, "cpus_per_trial": args.cpus_per_trial,
        "gpus_per_trial": args.gpus_per_trial, "seeds": args.seeds,
        "first_seed": args.first_seed, "space": args.space, "dataset": args.dataset,
        "table": getattr(args, "space_table", None), "budget": args.budget_s, "out": args.out,
        "address": args.address,
        "max_concurrent": args.max_concurrent, "retries": args.retries,
        "population": args.population,
        # the space-option and limit flags reach every run as env.KEY=VALUE items
        "set": [*(args.sets or []), *(f"env.{k}={json.dumps(v)}"
                                      for k, v in _env_options(args).items() if k != "table")]
               or None,
    }
    # Everything that can be wrong with the input fails here, before Ray starts (unless
    # evaluator actors are asked for: they are started before the plan is checked).
    settings = resolve_settings(load_sweep_file(args.config) if args.config else None, flags)
    served = _serve_trials({"space": settings.space}, settings.set, args.evaluator_actors,
                           args.gpus_per_evaluator, settings.address)
    settings = dataclasses.replace(settings, set=tuple(served))
    plan = plan_sweep(settings)
    out = settings.out or os.path.join("runs", time.strftime("sweep-%Y%m%d-%H%M%S"))
    runs = run_sweep(plan, out, resume=bool(args.resume))
    return _exit_code(runs)


def _exit_code(runs) -> int:
    """0, or EXIT_FAILED_RUNS when some runs of a finished comparison failed."""
    from dsmnas.experiments.report import FAILED

    return EXIT_FAILED_RUNS if (runs["status"] == FAILED).any() else 0


EXIT_BUG = 1
EXIT_FAILED_RUNS = 3
"""Exit codes: 0 all went well; 1 a bug (traceback printed); 2 bad input (one line); 3 a
comparison, ablation or sweep finished and wrote its reports, but some runs failed."""


_COMMANDS = {
    "search": ("run one DSM-NAS search", lambda sub, specs: _add_search(sub, specs())),
    "resume": ("continue a killed `dsmnas search --out DIR` from its last checkpoint",
               lambda sub, specs: _add_resume(sub)),
    "export-nb201": ("convert official NAS-Bench-201/NATS files to a table",
                     lambda sub, specs: _add_export(sub)),
    "train-supernet": (supernet_settings.HELP, lambda sub, specs: _add_train_supernet(sub)),
    "fit-predictor": ("fit an MLP accuracy predictor to a supernet's scores",
                      lambda sub, specs: _add_fit_predictor(sub)),
    "compare": ("compare search methods over seeds (Ray Tune), with summary tables and plots",
                lambda sub, specs: _add_compare(sub, specs())),
    "ablate": ("the paper's ablations as named comparisons over seeds (Ray Tune)",
               lambda sub, specs: _add_ablate(sub, specs())),
    "sweep": ("sweep DSM-NAS's K, M, entropy weight and lr over seeds (Ray Tune)",
              lambda sub, specs: _add_sweep(sub, specs())),
}
"""Subcommand -> (one-line help, builder of its parser)."""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The `dsmnas` parser; `argv` decides which plug-in space's settings become flags.

    Only the subcommand that `argv` names gets its whole parser (the others are listed with
    their one-line help), so that `dsmnas --help` and `dsmnas CMD --help` import nothing
    heavy (torch, Ray, pandas' plotting stack) and answer at once.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = _Parser(prog="dsmnas", description="DSM-NAS experiments on Ray")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_, build) in _COMMANDS.items():
        if name == chosen:
            build(sub, lambda: _specs(argv))
        else:
            sub.add_parser(name, help=help_)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
    except ConfigError as e:  # a plug-in space named by an entry point that does not load
        print(f"dsmnas: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as e:  # bad input; anything else is a bug and keeps its traceback
        print(f"dsmnas {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"dsmnas {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        # What is left is the interpreter's final collection over torch's and RLlib's
        # objects (1 s here); everything is written, so none of it needs collecting.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
