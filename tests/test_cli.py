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
