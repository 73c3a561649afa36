"""Plain ``.npz`` files (``x`` uint8 NHWC, ``y`` int), read with pickles disabled."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from pixeljax.data.arrays import ImageSet, make_image_set
from pixeljax.errors import DataError


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Returns ``(x, y, index)`` from one file; ``index`` is None when the file has none."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"x", "y"} - set(f.files)
            if missing:
                raise DataError(f"{path}: missing array(s) {sorted(missing)}; expected 'x' "
                                f"(uint8 NHWC images) and 'y' (integer labels), found {f.files}")
            return f["x"], f["y"], (f["index"] if "index" in f.files else None)
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None


def load_npz_file(path: Path) -> ImageSet:
    """One file; its class names are its ``class_names`` array (strings) if it has one."""
    x, y, index = read_npz(path)
    return make_image_set(x, y, index=index, source=str(path), class_names=_names(path))


def _names(path: Path) -> tuple[str, ...] | None:
    with np.load(path, allow_pickle=False) as f:
        if "class_names" not in f.files:
            return None
        try:
            names = f["class_names"]
        except ValueError:  # an object array, which only a pickle can read
            raise DataError(f"{path}: 'class_names' is an array of Python objects, which is "
                            f"not read (it would need a pickle); save it as strings: "
                            f"class_names=np.asarray(names, dtype=str)") from None
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"{path}: 'class_names' must be a list of strings, got {names.dtype} "
                        f"{names.shape}")
    names = tuple(str(n) for n in names)
    blank = [k for k, n in enumerate(names) if not n.strip()]
    if blank:
        raise DataError(f"{path}: 'class_names' has an empty name for class {blank[0]}; every "
                        f"class needs one to tell it apart in tables and figures")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"{path}: 'class_names' names two classes {twice[0]!r} (classes "
                        f"{[k for k, n in enumerate(names) if n == twice[0]]}); every class "
                        f"needs a name of its own")
    return names


def split_files(folder: Path, split: str) -> list[Path]:
    """The files of ``split`` in a folder laid out as ``test.npz``, ``train-0.npz``, ..."""
    single = folder / f"{split}.npz"
    if single.is_file():
        return [single]
    parts = [p for p in folder.glob(f"{split}-*.npz") if re.fullmatch(rf"{split}-\d+\.npz", p.name)]
    return sorted(parts, key=lambda p: int(p.stem.split("-")[1]))


def load_npz_folder(folder: Path, split: str) -> ImageSet:
    files = split_files(folder, split)
    if not files:
        raise DataError(f"{folder}: no {split}.npz or {split}-<k>.npz files for split {split!r}")
    xs, ys = zip(*[read_npz(p)[:2] for p in files])
    return make_image_set(np.concatenate(xs), np.concatenate(ys), source=f"{folder} ({split})")
