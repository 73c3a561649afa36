"""The persistent compilation cache: on by default for commands, movable, and off on request."""

import os
import subprocess
import sys

from pixeljax.runtime import compile_cache


def _accuracy(env_value, tmp_path):
    env = {**os.environ, compile_cache.ENV: env_value}
    done = subprocess.run([sys.executable, "-m", "pixeljax", "accuracy", "allconv", "--data",
                           "sample", "--limit", "20", "--json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_a_command_fills_the_cache_folder_it_is_given_and_reuses_it(tmp_path):
    folder = tmp_path / "cache"
    first = _accuracy(str(folder), tmp_path)
    entries = sorted(p.name for p in folder.iterdir())
    assert entries and all(name.endswith("-cache") or name.endswith("-atime")
                           for name in entries)
    second = _accuracy(str(folder), tmp_path)
    assert second.stdout == first.stdout  # same result from the cached program
    assert sorted(p.name for p in folder.iterdir()) == entries  # nothing compiled anew


def test_off_turns_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.enable() is None
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder")
    assert compile_cache.enable() is None  # an unusable folder only costs time


def test_the_default_folder_is_under_the_users_cache_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert compile_cache.default_folder() == tmp_path / "pixeljax" / "jax"
