"""The wheel works outside a checkout: it carries the shipped victims, recipes and suites
inside ``pixeljax`` (no top-level ``train``/``evaluate`` packages), and the installed command
finds the shipped AllConv victim from any directory.

The wheel is built from a copy of the sources with the environment's own setuptools (no build
isolation, no network) and installed without dependencies into a fresh virtual environment that
borrows this environment's packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "pixeljax", "checkpoints", "train", "evaluate")
TIMEOUT_S = 300


def _run(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _setuptools_builds_wheels() -> bool:
    """setuptools >= 77 (pyproject.toml's build requirement) builds wheels by itself."""
    try:
        from importlib.metadata import version
        return int(version("setuptools").split(".")[0]) >= 77
    except Exception:  # not installed, or an unparsable version
        return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not _setuptools_builds_wheels():
        pytest.skip("building the wheel needs setuptools>=77 in this environment "
                    "(pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", root / "dist", source, cwd=root)
    (built,) = (root / "dist").glob("pixeljax-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel, borrowing this environment's packages."""
    env = tmp_path_factory.mktemp("venv") / "env"
    _run(sys.executable, "-m", "venv", "--without-pip", env, cwd=env.parent)
    python = env / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=env).stdout.strip()
    # A path line in a .pth adds the folder only: this environment's editable install of the
    # checkout (its own .pth) stays out.
    Path(purelib, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         "--no-index", wheel, cwd=env)
    return env


def _outside_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@pytest.mark.slow
def test_the_wheel_holds_every_package_and_the_shipped_files_inside_pixeljax(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"pixeljax", wheel.name.split("-py3")[0]
                                                + ".dist-info"}
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "pixeljax").rglob("__init__.py")
                if "__pycache__" not in p.parts}
    assert packages <= {str(Path(n).parent) for n in names if n.endswith("/__init__.py")}
    shipped = {str(p.relative_to(REPO)) for p in (REPO / "checkpoints").rglob("*") if p.is_file()}
    assert {f"pixeljax/_shipped/{p}" for p in shipped} <= set(names)
    assert {"pixeljax/_shipped/train/allconv.py",
            "pixeljax/_shipped/evaluate/quick.py"} <= set(names)


@pytest.mark.slow
def test_the_installed_command_finds_the_shipped_victim_outside_a_checkout(installed,
                                                                          tmp_path):
    bin_ = installed / "bin"
    where = _run(bin_ / "python", "-c",
                 "import pixeljax, pixeljax.victims.checkpoint as c, pixeljax.evaluation as e, "
                 "pixeljax.training as t; print(pixeljax.__file__); "
                 "print(c.shipped_checkpoint('allconv')); "
                 "print(','.join(e.suite_names())); print(','.join(t.recipe_names()))",
                 cwd=tmp_path, env=_outside_env()).stdout.splitlines()
    assert all(Path(line).is_relative_to(installed) for line in where[:2])
    assert {"quick", "paper-cifar10"} <= set(where[2].split(","))
    assert "allconv" in where[3].split(",")
    assert "--model" in _run(bin_ / "pixeljax", "demo", "--help", cwd=tmp_path,
                             env=_outside_env()).stdout
    result = _run(bin_ / "pixeljax", "accuracy", "allconv", "--data", "sample", "--limit", "20",
                  cwd=tmp_path, env=_outside_env())
    assert "allconv: accuracy" in result.stdout and "on 20 images" in result.stdout
