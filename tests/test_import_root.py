"""One import root: installing the project adds the one top-level name `dsmnas`, and a search
and a comparison run beside other packages called `envs` or `experiments` (PyPI's `envs`,
a researcher's own folders on the path).

These tests build and install the project into a fresh virtualenv, so they need the package
index for the build backend and PyPI's `envs` (they skip, saying so, where it cannot be
reached). The fresh venv sees this venv's dependencies (torch, Ray, ...) through a `.pth`
line; this venv's editable install of the project is not seen there (a `.pth` line adds a
path, not a site directory, so the editable finder's own `.pth` is not run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BARE = ("envs", "policies", "trainables", "experiments")


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("import-root")
    wheels = base / "wheels"
    # setuptools for the build backend, and PyPI's `envs` (a popular package of that name)
    got = _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels),
                "setuptools>=77", "envs"])
    if got.returncode != 0:
        pytest.skip(f"the package index cannot be reached: {got.stderr.strip()[-200:]}")
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .stdout.strip())
    ours = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_paths()["purelib"]]
    (site / "zz_dependencies.pth").write_text("\n".join(ours) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
           "--find-links", str(wheels)]
    envs_wheel = next(p for p in wheels.iterdir() if p.name.lower().startswith("envs"))
    for target in (str(ROOT), str(envs_wheel)):  # ours (not editable), then PyPI's envs
        done = _run([*pip, "--no-deps", target])
        assert done.returncode == 0, done.stderr[-2000:]
    return venv


def test_install_adds_one_top_level_name_and_keeps_pypi_envs(venv):
    python = str(venv / "bin" / "python")
    code = (
        "import importlib.metadata as m, json, sys\n"
        "files = [str(f) for f in m.distribution('dsmnas').files]\n"
        "import envs, dsmnas.envs\n"
        "print(json.dumps({'top': sorted({f.split('/')[0] for f in files}),\n"
        "                  'envs': envs.__file__, 'ours': dsmnas.envs.__file__}))\n"
    )
    done = _run([python, "-c", code], cwd=venv)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    tops = [t for t in found["top"] if not t.endswith(".dist-info") and t != ".."]
    assert tops == ["dsmnas"], found["top"]
    assert "site-packages/envs" in found["envs"] and "dsmnas/envs" in found["ours"]


def test_search_and_compare_run_beside_a_users_own_envs_and_experiments(venv, tmp_path):
    # A researcher's repository with packages of the same names, first on the path: if any
    # module of ours imported `envs` or `experiments`, it would get these and fail loudly.
    for name in ("envs", "experiments"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise RuntimeError('the user\\'s own {name} package was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    dsmnas = str(venv / "bin" / "dsmnas")
    searched = _run([dsmnas, "search", "--budget", "100000", "--out", "s", "--quiet"],
                    cwd=tmp_path, env=env)
    assert searched.returncode == 0, searched.stderr[-2000:]
    assert json.loads((tmp_path / "s" / "result.json").read_text())["queries"] > 10
    compared = _run([dsmnas, "compare", "--methods", "dsm,random", "--seeds", "1", "--budget",
                     "100000", "--out", "c"], cwd=tmp_path, env=env)
    assert compared.returncode == 0, compared.stderr[-3000:]
    runs = pd.read_csv(tmp_path / "c" / "runs.csv")
    assert sorted(runs["method"]) == ["dsm", "random"] and (runs["status"] == "ok").all()


def test_a_bare_package_name_is_refused_in_one_line():
    for name in BARE:
        done = _run([sys.executable, "-c", f"import {name}"], cwd=ROOT)
        assert done.returncode == 1
        assert f"since dsmnas 0.4 it is 'dsmnas.{name}'" in done.stderr.strip().splitlines()[-1]


def test_a_plug_in_importing_the_bare_names_is_refused_in_one_line(tmp_path):
    (tmp_path / "oldplug.py").write_text("from envs.registry import SpaceSpec\nSPEC = None\n")
    done = _run([sys.executable, "-m", "dsmnas.experiments.cli", "search", "--space",
                 "oldplug:SPEC"], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "dsmnas search: error: search space 'oldplug:SPEC': 'oldplug' imports 'envs', which "
        "dsmnas 0.4 moved to 'dsmnas.envs': change the import (and 'envs.' in import strings) "
        "to 'dsmnas.envs'")
