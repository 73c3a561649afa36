"""JAX's persistent compilation cache, on by default for the command line.

Compiling the attack engine for a victim takes tens of seconds on a CPU; with the cache, a
second run of any command with the same shapes loads the compiled programs from disk instead.

The folder is ``pixeljax/jax`` under the user's cache directory (``~/.cache`` on Linux, via
``platformdirs``); the environment variable ``PIXELJAX_COMPILE_CACHE`` names another folder,
or turns the cache off with ``off``.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import platformdirs

from pixeljax._plumbing.notices import warn

ENV = "PIXELJAX_COMPILE_CACHE"
OFF = ("off", "0", "false", "no", "")


def default_folder() -> Path:
    return Path(platformdirs.user_cache_dir("pixeljax")) / "jax"


def enable(folder: str | os.PathLike | None = None) -> Path | None:
    """Turns the persistent compilation cache on and returns its folder.

    ``folder`` defaults to ``$PIXELJAX_COMPILE_CACHE``, else :func:`default_folder`; ``off``
    in the environment variable turns it off (returns None). A folder that cannot be created
    or written leaves the cache off (one warning for the latter): it only saves time, it is
    never needed.
    """
    if folder is None:
        setting = os.environ.get(ENV)
        if setting is not None and setting.strip().lower() in OFF:
            return None
        folder = Path(setting).expanduser() if setting else default_folder()
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):  # JAX would warn at every program
        warn(f"the compilation cache folder {folder} is not writable; running without the "
             f"cache (set {ENV} to another folder, or to 'off')")
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Cache every program: on a CPU even the small ones add up to seconds of start-up.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
