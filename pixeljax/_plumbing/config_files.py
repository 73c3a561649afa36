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
      PixeljaxError: as :func:`load_module`, or the file defines no ``attribute`` of type
        ``kind``.
    """
    module, path = load_module(name_or_path, folder, what=what, names=names)
    value = getattr(module, attribute, None)
    if not isinstance(value, kind):
        raise PixeljaxError(f"{path} defines no {attribute} = {kind.__name__}(...)")
    return value


def load_module(name_or_path: str | Path, folder: Path, *, what: str, names: list[str]):
    """The module ``folder/NAME.py``, or a ``.py`` file given by path, run; and its path.

    Raises:
      PixeljaxError: no such file, a syntax error or code in it that raises (named with its
        line; the original exception is the ``__cause__``).
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
    except SyntaxError as e:  # the file itself, or a module it imports
        where = f"{what} file {path}" if _same(e.filename, path) else f"{e.filename}"
        raise PixeljaxError(f"{where}, line {e.lineno}: {type(e).__name__}: {e.msg}") from e
    except (Exception, SystemExit) as e:  # the file's own code raised
        line = _line_in(e.__traceback__, path)
        where = f"{what} file {path}" + (f", line {line}" if line else "")
        detail = str(e) if isinstance(e, PixeljaxError) else f"{type(e).__name__}: {e}"
        raise PixeljaxError(f"{where}: {detail}") from e
    return module, path


def _same(filename, path: Path) -> bool:
    try:
        return filename is not None and Path(filename).resolve() == path.resolve()
    except OSError:
        return False


def _line_in(tb, path: Path) -> int | None:
    """The line of ``path`` that was running when the exception was raised (the innermost
    frame of that file in the traceback)."""
    line = None
    while tb is not None:
        if _same(tb.tb_frame.f_code.co_filename, path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
