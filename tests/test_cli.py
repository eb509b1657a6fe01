import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dsmnas.experiments import cli
from dsmnas.experiments.cli import main
from dsmnas.envs.spaces.nb201 import NB201Space


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-K", "0"], "K must be an integer >= 1, got 0"),
        (["-M", "9"], "M must be an integer in 1..6"),
        (["--budget", "-5"], "budget_s must be > 0 seconds, got -5.0"),
        (["--dataset", "svhn"], "unknown dataset 'svhn'"),
        (["--space", "darts"], "unknown search space 'darts'"),
        (["--table", "/no/such.csv"], "'/no/such.csv' does not exist"),
        (["-K", "1", "--init-from", "|nope|"], "invalid NAS-Bench-201 architecture string '|nope|'"),
        (["--budgt", "5"], "unrecognized arguments: --budgt"),
        (["--seed", "-1"], "seed must be an integer >= 0, got -1"),
        (["--space", "mobilenet", "--table", "x.csv"],
         "unknown environment setting(s) ['table'] for space 'mobilenet'"),
        (["--space", "nosuchpkg.mod:SPEC"], "cannot import module 'nosuchpkg.mod'"),
        (["--space", "dsmnas.envs.config:EnvConfig"], "is a EnvConfig, not a SpaceSpec"),
        (["--workers", "4"], "dsmnas search runs dsm, which does not run over parallel workers"),
        (["--message-passing", "three-way"], "message_passing must be one of two-way, one-way"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert exit_code(["search", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def exit_code(argv):
    """main's return value, or the code of the SystemExit that argparse raises."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_console_script_exits_2_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "dsmnas.experiments.cli", "search", "-K", "-3"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "dsmnas search: error: K must be an integer >= 1, got -3"


def test_search_end_to_end(nb201_data, tmp_path, ray_session, capsys):
    out = tmp_path / "run"
    budget_s = nb201_data.budget_s(3000)
    rc = main(["search", *nb201_data.args, "--budget", str(budget_s), "--seed", "1",
               "--out", str(out), "--quiet"])
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == [
        "step", "subspace", "arch", "val_acc", "reward", "accepted", "cost_s", "sim_time_s"]
    assert result["queries"] == len(history) > 5
    assert result["sim_time_s"] == pytest.approx(history.cost_s.sum()) and result["sim_time_s"] <= budget_s
    assert history.sim_time_s.is_monotonic_increasing
    space = NB201Space()
    space.parse(result["arch"])
    # the answer is the best center: at least as good as every accepted architecture
    assert result["val_acc"] >= history.loc[history.accepted, "val_acc"].max()
    nb201_data.assert_test_acc(result.get("test_acc"))
    assert result["seed"] == 1 and result["config"]["env"]["K"] == 4
    assert result["config"]["val_metric"] == nb201_data.val_metric
    assert "best:" in capsys.readouterr().out


def test_a_bug_keeps_its_traceback_and_exit_code_1(monkeypatch):
    # only ConfigError is bad input; any other exception propagates (Python: exit code 1)
    import dsmnas.experiments.cli as cli
    def broken(args):
        raise ValueError("too many values to unpack (expected 8)")

    monkeypatch.setattr(cli, "_search", broken)
    with pytest.raises(ValueError, match="too many values to unpack"):
        main(["search"])


def test_importing_the_controller_prints_no_warning():
    # torch-geometric's import calls the deprecated torch.jit.script under torch 2.14
    out = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", "import dsmnas.policies.gnn"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("command", [[], *([name] for name in cli._COMMANDS)])
def test_help_imports_nothing_heavy(command):
    """`dsmnas [CMD] --help` builds only CMD's parser and imports no torch, Ray, pandas or
    matplotlib (that is what makes it answer at once)."""
    code = (
        "import sys\nfrom dsmnas.experiments.cli import main\n"
        f"try:\n    main({command + ['--help']!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'ray', 'pandas', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parent.parent))
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]


def _settings_classes():
    """Every settings dataclass the project declares: the env's, the learner's, each
    method's, each built-in space's, the commands' and the supernet trainer's (not the
    values they hold: a compared method, a swept configuration, a range)."""
    import dataclasses as dc

    from dsmnas.envs.config import EnvConfig
    from dsmnas.envs.registry import builtin_names, get_spec
    from dsmnas.experiments import settings
    from dsmnas.trainables.learner import LearnerSettings
    from dsmnas.trainables.methods import METHODS, _import
    from dsmnas.trainables.supernet_settings import SupernetTrainSettings

    classes = {EnvConfig, LearnerSettings, SupernetTrainSettings}
    classes |= {c for c in vars(settings).values() if isinstance(c, type) and dc.is_dataclass(c)
                and c.__module__ == settings.__name__
                and c not in (settings.MethodSpec, settings.Config, settings.LogUniform)}
    for method in METHODS.values():
        classes |= {_import(target) for target in method.settings}
    for name in builtin_names():
        try:
            spec = get_spec(name)
        except Exception:  # a space whose optional package is missing (ofa)
            continue
        if spec.settings is not None:
            classes.add(spec.settings)
    return classes


def test_every_setting_is_declared_one_way_with_its_help():
    import dataclasses as dc

    classes = _settings_classes()
    assert len(classes) >= 15
    for cls in classes:
        for f in dc.fields(cls):
            if cls.__name__ == "EnvConfig" and f.name == "options":
                continue
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} is not declared with setting()"


def _help(argv):
    proc = subprocess.run([sys.executable, "-m", "dsmnas.experiments.cli", *argv, "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_search_help_has_a_flag_for_every_env_learner_and_space_setting():
    import dataclasses as dc
    import typing

    from dsmnas.envs.config import EnvConfig
    from dsmnas.envs.registry import builtin_names, get_spec
    from dsmnas.experiments.flags import flag_name
    from dsmnas.trainables.learner import LearnerSettings

    text = _help(["search"])
    classes = [EnvConfig, LearnerSettings]
    for name in builtin_names():
        try:
            spec = get_spec(name)
        except Exception:
            continue
        if spec.settings is not None:
            classes.append(spec.settings)
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dc.fields(cls):
            if f.name == "options":
                continue
            assert f" {flag_name(f, hints[f.name])} " in text, (cls.__name__, f.name)
    for flag in ("--message-passing", "--mask-noop-edits", "--baseline-decay", "--no-graph",
                 "--budget SECONDS", "-K K"):
        assert flag in text


def test_help_lists_every_space_with_its_description():
    from dsmnas.envs.registry import get_spec, space_names

    for command in ("search", "compare", "ablate", "sweep"):
        text = _help([command])
        for name in space_names():
            assert f"  {name} " in text and get_spec(name).description[:40] in text, (command, name)
