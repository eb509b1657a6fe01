"""The `dsmnas` command.

    dsmnas search [--space nb201] [--dataset cifar10] [--table PATH] [--budget S] [--seed N]
                  [-K 4] [-M 4] [--lr 0.01] [--entropy 7.5e-4] [--out DIR] ...
    dsmnas resume DIR                     (continue a killed search from DIR/checkpoint/)
    dsmnas export-nb201 SRC DST
    dsmnas compare / ablate / sweep ...   (see `dsmnas COMMAND --help`)

User errors (bad values, missing files: `dsmnas.envs.errors.ConfigError`) print one line on stderr
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
from dsmnas.envs.errors import ConfigError, MissingFileError
from dsmnas.experiments.flags import FlagSet, add_flags
from dsmnas.experiments.settings import EvaluatorSettings, SearchCommand
from dsmnas.trainables.learner import LearnerSettings
from dsmnas.trainables.supernet_settings import HELP as TRAIN_SUPERNET_HELP

EXIT_USAGE = 2
_SERVICES: list = []
"""Evaluator services this command started (`_evaluator_service`)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")




_ENV_FLAGS = ("space", "dataset", "budget_s", "budget_queries", "workers", "limits",
              "over_limit", "objectives")
"""The env settings that compare, ablate and sweep take as flags (the rest: --set env.KEY=V)."""


def _add_search(sub, specs) -> None:
    p = sub.add_parser("search", help=_COMMANDS["search"][0], description=__doc__,
                       epilog=_spaces_epilog(specs), formatter_class=_Formatter)
    flags = {
        "env": add_flags(p.add_argument_group("search (the env)"), EnvConfig, skip=("options",),
                         defaults={"seed": 0}),
        "learner": add_flags(p.add_argument_group("DSM-NAS learner"), LearnerSettings),
        "space": _add_space_options(p, specs),
        "evaluators": add_flags(p.add_argument_group("supernet evaluator actors"),
                                EvaluatorSettings),
        "command": add_flags(p.add_argument_group("output"), SearchCommand),
    }
    p.set_defaults(run=_search, flags=flags)


def _add_resume(sub) -> None:
    p = sub.add_parser(
        "resume", help=_COMMANDS["resume"][0],
        description="Rebuild the search from DIR/search.json, restore DIR/checkpoint/, cut "
                    "DIR/history.csv back to the checkpoint and run to the end of the budget: "
                    "the same history and result as an uninterrupted search.",
    )
    p.add_argument("dir", help="the --out folder of the search")
    p.set_defaults(run=_resume, flags={"command": add_flags(p, SearchCommand, only=("quiet",))})


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
        _evaluator_service(env_cfg, EvaluatorSettings(spec.get("evaluator_actors", 1),
                                                      spec.get("gpus_per_evaluator")))
    quiet = args.flags["command"].given(args).get("quiet", False)
    return _run_recorded(env_cfg, learner, args.dir, every, quiet, resume=True)


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
    if result.front is not None:
        figures = "  ".join(f"{k} {v:.4f}" for k, v in result.front_figures.items()
                            if v == v)  # NaN: the data has no test accuracy
        print(f"front: {len(result.front)} architectures (non-dominated, on validation)  "
              f"{figures}")
    simulated = f"{result.sim_time_s:,.0f} s simulated, " if result.config["budget_s"] else ""
    print(f"{result.queries} queries, {simulated}{result.wall_time_s:.1f} s wall; "
          f"wrote {path}/result.json, history.csv"
          + (", front.csv" if result.front is not None else ""))
    return 0


def _search(args) -> int:
    flags = args.flags
    env_cfg = EnvConfig.from_dict(_env_values(args))
    from dsmnas.trainables.search import learner_for_space

    learner = learner_for_space(env_cfg.space, flags["learner"].settings(args, "learner"),
                                set(flags["learner"].given(args)))
    command = flags["command"].settings(args, "search")
    evaluators = flags["evaluators"].settings(args, "search")
    if env_cfg.workers > 1:  # dsm proposes one query at a time, knowing every result
        raise ConfigError(f"dsmnas search runs dsm, which does not run over parallel workers "
                          f"(--workers {env_cfg.workers}); use dsmnas compare --methods "
                          f"dsm-sync or dsm-async --workers {env_cfg.workers}")
    if env_cfg.objectives is not None:
        from dsmnas.trainables.methods import check_method

        check_method("dsm", env_cfg, label="dsmnas search runs dsm, which")
    service = _evaluator_service(env_cfg, evaluators, command.address)
    if service is not None:
        env_cfg = dataclasses.replace(env_cfg, evaluator_service=service)
    # Build the env once here so that bad settings fail in a second (before Ray starts,
    # unless evaluator actors were asked for).
    from dsmnas.envs import DSMNASEnv
    from dsmnas.envs.benchmarks.base import budget_text

    env = DSMNASEnv(env_cfg.to_dict())
    if not command.quiet:
        bench, clock = env.benchmark, env.benchmark.clock
        limit = f"; {bench.limit_text()}" if bench.limit_text() else ""
        print(f"data: {bench.source} ({bench.val_metric}); budget "
              f"{budget_text(clock.budget_s, clock.budget_queries)}"
              f"{limit}; K={env_cfg.K} M={env_cfg.M} lr={learner.lr:g} "
              f"entropy={learner.entropy:g} seed={env_cfg.seed}")
    out = command.out or os.path.join("runs", time.strftime("search-%Y%m%d-%H%M%S"))
    # The full config first, so that `dsmnas resume OUT` can rebuild this search.
    from dataclasses import asdict

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "search.json"), "w") as f:
        json.dump({"env": env_cfg.to_dict(), "learner": asdict(learner),
                   "checkpoint_every": command.checkpoint_every,
                   "evaluator_actors": evaluators.evaluator_actors,
                   "gpus_per_evaluator": evaluators.gpus_per_evaluator}, f, indent=2)
        f.write("\n")
    return _run_recorded(env_cfg, learner, out, command.checkpoint_every, command.quiet)


def _env_values(args, space: str | None = None) -> dict:
    """The env settings given as flags (the env's and the spaces' own), by name. The --limit
    items are added to the space's own limits (mobilenet: macs_m <= 600), the later winning;
    `space`: the space when the env flags have none (a sweep's own key)."""
    flags = args.flags
    env = {**flags["env"].given(args), **_space_values(args, flags["space"])}
    items = env.pop("limits", None)
    if items:
        from dsmnas.envs.config import parse_limits
        from dsmnas.envs.registry import get_spec

        spec = get_spec(env.get("space", space or EnvConfig.space))
        env["limits"] = {**spec.env_defaults.get("limits", {}), **parse_limits(list(items))}
    return env


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (tables, examples)."""


def _spaces_epilog(specs) -> str:
    """Every built-in and installed search space with its one-line description."""
    lines = [f"  {spec.name:24s} {spec.description}" for spec in specs]
    return ("search spaces (--space; also 'package.module:SPEC' or table:FILE):\n"
            + "\n".join(lines))


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


def _add_space_options(p, specs, skip=()) -> list[FlagSet]:
    """One flag per space setting (`SpaceSpec.settings` fields, `limit_aliases`), grouped by
    space, but those in `skip` (flags of the command's own); a flag given is passed as that
    setting, one not given leaves the space's default."""
    seen: set[str] = set(skip)
    out = []
    for spec in specs:
        names = [f.name for f in spec.option_fields() if f.name not in seen]
        aliases = [a for a in spec.limit_aliases if a not in seen]
        if not names and not aliases:
            continue
        group = p.add_argument_group(f"{spec.name} space")
        if names:
            out.append(add_flags(group, spec.settings, only=names, dest_prefix="space_"))
        seen.update(names)
        for alias in aliases:  # a shorthand of --limit, declared by the spec
            seen.add(alias)
            group.add_argument("--" + alias.replace("_", "-"), dest=f"space_{alias}", type=float,
                               metavar="VALUE", default=argparse.SUPPRESS,
                               help=f"shorthand for --limit {spec.limit_aliases[alias]}=VALUE")
            out.append(FlagSet(type(None), {f"space_{alias}": alias}))
    return out


def _space_values(args, flagsets: list[FlagSet]) -> dict:
    """The space-option flags that were given, by setting name."""
    return {k: v for fs in flagsets for k, v in fs.given(args).items()}


def _serve_trials(env: dict, sets, ev: EvaluatorSettings, address: str | None) -> list[str]:
    """Start the evaluator actors that every trial shares (when asked for) and add their
    name to the trials' env settings (`sets`, env.KEY=VALUE items, over `env`)."""
    from dsmnas.experiments.plan import split_set

    sets = list(sets or [])
    if not ev.evaluator_actors and ev.gpus_per_evaluator is None:
        return sets
    given = {key: value for target, key, value in map(split_set, sets) if target == "env"}
    cfg = EnvConfig.from_dict({**env, **given})
    name = _evaluator_service(cfg, ev, address)
    return [*sets, f"env.evaluator_service={name}"]


def _evaluator_service(env_cfg: EnvConfig, ev: EvaluatorSettings,
                       address: str | None = None) -> str | None:
    """Start `ev.evaluator_actors` supernet evaluator actors for `env_cfg` (none: evaluate
    in-process) on the cluster at `address` (None: a local Ray); the name the env finds
    them by. On a joined cluster they wait up to `ev.evaluator_wait` s for a node with the
    resource `supernet_evaluator` (an autoscaler may be starting one)."""
    actors, gpus = ev.evaluator_actors, ev.gpus_per_evaluator
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
                                      gpus_per_actor=gpus, data=env_cfg.data, name=DEFAULT_NAME,
                                      wait_for_resource_s=ev.evaluator_wait if address else 0))
    return DEFAULT_NAME


def _add_train_supernet(sub) -> None:
    from dsmnas.experiments.settings import TrainSupernetCommand
    from dsmnas.trainables import supernet_settings
    from dsmnas.trainables.supernet_settings import SupernetTrainSettings

    p = sub.add_parser("train-supernet", help=TRAIN_SUPERNET_HELP,
                       description=supernet_settings.__doc__, formatter_class=_Formatter)
    flags = {"train": add_flags(p.add_argument_group("training"), SupernetTrainSettings),
             "command": add_flags(p, TrainSupernetCommand)}
    p.set_defaults(run=_train_supernet, flags=flags)


def _train_supernet(args) -> int:
    command = args.flags["command"].settings(args, "train-supernet")
    checked = args.flags["train"].settings(args, "train-supernet")
    import torch

    from dsmnas.trainables.supernet import train_supernet

    out = command.out or os.path.join("runs", time.strftime("supernet-%Y%m%d-%H%M%S"))
    if command.threads is not None:
        torch.set_num_threads(command.threads)
    values = {f.name: getattr(checked, f.name) for f in fields(checked) if f.name != "data"}
    train_supernet(checked.data, out, progress=None if command.quiet else _print_flush,
                   resume=command.resume, **values)
    return 0


def _print_flush(line: str) -> None:
    print(line, flush=True)


def _add_fit_predictor(sub) -> None:
    from dsmnas.experiments.settings import FitPredictorSettings

    p = sub.add_parser(
        "fit-predictor", help=_COMMANDS["fit-predictor"][0],
        description="Score N seeded random subnets with the supernet (in-process, or through "
                    "evaluator actors), fit ofa's accuracy-predictor MLP to them and save it "
                    "for `dsmnas search --space mobilenet --evaluator fitted --predictor OUT`.",
    )
    flags = {"fit": add_flags(p, FitPredictorSettings),
             "evaluators": add_flags(p.add_argument_group("supernet evaluator actors"),
                                     EvaluatorSettings)}
    p.set_defaults(run=_fit_predictor, flags=flags)


def _fit_predictor(args) -> int:
    from dsmnas.trainables.fit_predictor import fit_predictor

    a = args.flags["fit"].settings(args, "fit-predictor")
    ev = args.flags["evaluators"].settings(args, "fit-predictor")
    cfg = EnvConfig(space="mobilenet", evaluator="supernet", checkpoint=a.checkpoint, data=a.data)
    service = _evaluator_service(cfg, ev)
    if service is None:
        from dsmnas.envs.evaluators.supernet import SubnetEvaluator

        evaluator = SubnetEvaluator(a.checkpoint, data=a.data)
    else:
        from dsmnas.envs.evaluators.client import EvaluatorClient

        evaluator = EvaluatorClient.connect(service)
    metrics = fit_predictor(evaluator, a.samples, a.out, seed=a.seed, epochs=a.epochs, log=print)
    print(f"held-out Spearman {metrics['held_out_spearman']:.3f}, RMSE "
          f"{metrics['held_out_rmse']:.2f} points ({metrics['n_held_out']} subnets); "
          f"scoring {metrics['eval_time_s']:.0f} s, fit {metrics['fit_time_s']:.0f} s; wrote {a.out}")
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
    from dsmnas.experiments.settings import CompareSettings
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
            "settings):\n" + describe_methods() + "\n\n" + _spaces_epilog(specs) + "\n\nexample:\n"
            "  dsmnas compare --methods dsm,nograph=dsm --set nograph.use_graph=false \\\n"
            "                 --seeds 10 --table nb201.csv.gz --out runs/cmp"
        ),
        formatter_class=_Formatter,
    )
    flags = {"run": add_flags(p, CompareSettings, only=("methods",))}
    _add_run_options(p, specs, flags, CompareSettings)
    p.set_defaults(run=_compare, flags=flags)


def _add_run_options(p, specs, flags: dict, cls) -> None:
    """Flags shared by compare, ablate and sweep: the run settings of `cls` (`RunSettings`
    or a subclass: seeds, output, cluster, retries, population, --set, --resume), the env
    settings of `_ENV_FLAGS` (the rest through --set env.KEY=VALUE), the spaces' own settings
    and the evaluator actors. Fills `flags`."""
    from dsmnas.experiments.settings import RunCommand, RunSettings

    run = flags.get("run")
    names = [f.name for f in fields(RunSettings)]
    group = p.add_argument_group("how the runs run")
    run_more = add_flags(group, cls, only=names)
    flags["run"] = FlagSet(cls, {**(run.dests if run else {}), **run_more.dests})
    flags["command"] = add_flags(group, RunCommand)
    flags["live"] = _add_live_flags(p)
    flags["env"] = add_flags(p.add_argument_group("every run's env"), EnvConfig, only=_ENV_FLAGS)
    flags["space"] = _add_space_options(p, specs)
    flags["evaluators"] = add_flags(p.add_argument_group("supernet evaluator actors"),
                                    EvaluatorSettings)


def _add_live_flags(p) -> FlagSet:
    """How trials report to Tune while they search (`trainables.live.LiveSettings`)."""
    from dsmnas.trainables.live import LiveSettings

    return add_flags(p.add_argument_group("live results (Tune)"), LiveSettings)


def _live(args):
    return args.flags["live"].settings(args, args.command)


def _run_values(args):
    """(the run settings, the shared env settings given, the evaluator settings, the
    command's RunCommand) of compare or ablate."""
    flags = args.flags
    return (flags["run"].settings(args, args.command), _env_values(args),
            flags["evaluators"].settings(args, args.command),
            flags["command"].settings(args, args.command))


def _compare(args) -> int:
    from dsmnas.experiments.compare import run_compare
    from dsmnas.experiments.plan import plan_compare
    run, env, ev, command = _run_values(args)
    # Everything that can be wrong with the input fails here, in a second, before Ray starts.
    plan = plan_compare(
        run.methods, run.seeds, run.first_seed, env=env,
        sets=_serve_trials(env, run.set, ev, run.address),
        population=run.population,
    )
    out = run.out or os.path.join("runs", time.strftime("compare-%Y%m%d-%H%M%S"))
    runs = run_compare(plan, out, address=run.address, max_concurrent=run.max_concurrent,
                       retries=run.retries, resume=command.resume, live=_live(args),
                       trackers=run.trackers)
    return _exit_code(runs)


def _add_ablate(sub, specs) -> None:
    from dsmnas.experiments.settings import RunSettings, describe_ablations

    p = sub.add_parser(
        "ablate",
        help=_COMMANDS["ablate"][0],
        description="Run a named ablation: every output of `dsmnas compare`, plus "
                    "ablation.md, ablation.csv and ablation.png.",
        epilog="ablations:\n" + describe_ablations() + "\n\n" + _spaces_epilog(specs),
        formatter_class=_Formatter,
    )
    p.add_argument("name", help="which ablation (see below)")
    flags: dict = {}
    _add_run_options(p, specs, flags, RunSettings)
    p.set_defaults(run=_ablate, flags=flags)


def _ablate(args) -> int:
    from dsmnas.experiments.ablate import write_ablation
    from dsmnas.experiments.compare import run_compare
    from dsmnas.experiments.plan import REFERENCE, plan_compare
    from dsmnas.experiments.settings import reference, variants

    run, env, ev, command = _run_values(args)
    space = env.get("space", EnvConfig.space)
    plan = plan_compare(
        list(variants(args.name, space)), run.seeds, run.first_seed, env=env,
        sets=_serve_trials(env, run.set, ev, run.address),
        population=run.population,
    )
    out = run.out or os.path.join("runs", time.strftime(f"ablate-{args.name}-%Y%m%d-%H%M%S"))
    runs = run_compare(plan, out, address=run.address, max_concurrent=run.max_concurrent,
                       retries=run.retries, reference=reference(args.name, space) or REFERENCE,
                       resume=command.resume, live=_live(args), trackers=run.trackers)
    paths = write_ablation(args.name, runs, out, K=plan.env.K, space=plan.env.space)
    print("wrote " + ", ".join(str(p) for p in paths))
    return _exit_code(runs)


_SWEEP_ENV = ("budget_queries", "workers", "limits", "over_limit", "objectives")
"""Env flags a sweep passes to every run as env.KEY=VALUE items (space, dataset, table and
budget are the sweep's own keys)."""


def _add_sweep(sub, specs) -> None:
    from dsmnas.experiments.settings import KEYS, SweepCommand, SweepSettings

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
            + _spaces_epilog(specs) + "\n\nexamples:\n"
            "  dsmnas sweep --K 2,4,8 --M 2,3,4 --entropy 5e-4,7.5e-4,1e-3 --seeds 5\n"
            "  dsmnas sweep --config experiments/sweeps/nb201-small.yaml --seeds 1"
        ),
        formatter_class=_Formatter,
    )
    sweep_keys = [f.name for f in fields(SweepSettings)]
    flags = {
        "sweep": add_flags(p.add_argument_group("the sweep (also sweep-file keys)"),
                           SweepSettings, only=sweep_keys),
        "env": add_flags(p.add_argument_group("every run's env"), EnvConfig, only=_SWEEP_ENV),
        "space": _add_space_options(p, specs, skip=sweep_keys),
        "evaluators": add_flags(p.add_argument_group("supernet evaluator actors"),
                                EvaluatorSettings),
        "command": add_flags(p, SweepCommand),
        "live": _add_live_flags(p),
    }
    p.set_defaults(run=_sweep, flags=flags)


def _sweep(args) -> int:
    from dsmnas.experiments.sweep import load_sweep_file, plan_sweep, resolve_settings, run_sweep

    flags = args.flags
    values = flags["sweep"].given(args)
    # The env and space-option flags reach every run as env.KEY=VALUE items.
    env = _env_values(args, space=values.get("space"))
    if env:
        values["set"] = [*values.get("set", []), *(f"env.{k}={json.dumps(v)}" for k, v in env.items())]
    command = flags["command"].settings(args, "sweep")
    ev = flags["evaluators"].settings(args, "sweep")
    # Everything that can be wrong with the input fails here, before Ray starts (unless
    # evaluator actors are asked for: they are started before the plan is checked).
    settings = resolve_settings(load_sweep_file(command.config) if command.config else None,
                                values)
    served = _serve_trials({"space": settings.space}, settings.set, ev, settings.address)
    settings = dataclasses.replace(settings, set=tuple(served))
    plan = plan_sweep(settings)
    out = settings.out or os.path.join("runs", time.strftime("sweep-%Y%m%d-%H%M%S"))
    runs = run_sweep(plan, out, resume=command.resume, live=_live(args))
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
    "train-supernet": (TRAIN_SUPERNET_HELP, lambda sub, specs: _add_train_supernet(sub)),
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
