"""Configuration files that are Python modules: training recipes (``train/NAME.py``, defining
``RECIPE``) and evaluation suites (``evaluate/NAME.py``, defining ``SUITE``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pixeljax.errors import PixeljaxError


def names_in(folder: Path) -> list[str]:
    """Module names of a config folder (private ``_*.py`` files excluded)."""
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def load_config(name_or_path: str | Path, folder: Path, attribute: str, kind: type, *,
                what: str, names: list[str]):
    """``attribute`` of ``folder/NAME.py``, or of a ``.py`` file given by path.

    Raises:
      PixeljaxError: no such file, or it defines no ``attribute`` of type ``kind``.
    """
    path = Path(name_or_path)
    if path.suffix != ".py":
        path = folder / f"{str(name_or_path).replace('-', '_')}.py"
        if not path.is_file() or path.stem.startswith("_"):
            raise PixeljaxError(f"unknown {what} {str(name_or_path)!r}; expected one of "
                                f"{', '.join(names)} or a path to a {what} .py file")
    if not path.is_file():
        raise PixeljaxError(f"{what} file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"pixeljax_{what}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except PixeljaxError as e:
        raise PixeljaxError(f"{path}: {e}") from None
    value = getattr(module, attribute, None)
    if not isinstance(value, kind):
        raise PixeljaxError(f"{path} defines no {attribute} = {kind.__name__}(...)")
    return value
