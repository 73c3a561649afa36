"""Folders of images, one folder per class (as torchvision's ``ImageFolder`` reads them).

    DIR/<class name>/<image>.png|.jpg|.jpeg|.bmp       (or DIR/<split>/<class name>/...)

Classes are the folder names in sorted order; an image's index is its position in the sorted
list of all files. Hidden folders (``.*``) and ``__MACOSX`` are no classes; an empty class
folder is refused, as torchvision refuses it, since it would shift every later label. Every image must have the same size; grey images give one channel, colour
ones three.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixeljax._plumbing.notices import note
from pixeljax.data.arrays import ImageSet, make_image_set
from pixeljax.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
EIGHT_BIT = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr")  # what converts to RGB as is


SYSTEM = ("__MACOSX",)  # folders an archiver leaves beside the data (and hidden ones, ".*")


def _is_system(folder: Path) -> bool:
    return folder.name.startswith(".") or folder.name in SYSTEM


def _classes(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir() and not _is_system(d)),
                  key=lambda d: d.name)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)


def image_root(path: Path, split: str) -> Path | None:
    """The folder of class folders for ``split`` (``path/split`` or ``path``), if any."""
    for root in (path / split, path):
        if root.is_dir() and any(_images(d) for d in _classes(root)):
            return root
    return None


def load_image_folder(path: Path, split: str) -> ImageSet:
    from PIL import Image, UnidentifiedImageError

    root = image_root(path, split)
    if root is None:
        raise DataError(f"{path}: no class folders of images ({', '.join(SUFFIXES)})")
    classes = _classes(root)
    # An empty class folder would still take a label and shift every later class by one.
    empty = [d.name for d in classes if not _images(d)]
    if empty:
        raise DataError(f"{root}: empty class folder(s) {', '.join(repr(n) for n in empty)} "
                        f"(no {', '.join(SUFFIXES)} images): each would take a label and shift "
                        f"the later classes; remove them or add their images")
    skipped = sorted(d.name for d in root.iterdir() if d.is_dir() and _is_system(d))
    if skipped:
        note(f"{root}: skipped {', '.join(skipped)} (hidden or system folders, not classes)")
    files = [(k, f) for k, d in enumerate(classes) for f in _images(d)]
    images, grey = [], []
    for _, f in files:
        try:
            with Image.open(f) as im:
                if im.mode not in EIGHT_BIT:
                    raise DataError(f"{f}: image mode {im.mode!r} is not 8 bits per channel; "
                                    f"convert the images to 8-bit grey or RGB first")
                grey.append(im.mode in ("L", "1", "LA"))
                images.append(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DataError(f"{f}: not a readable image ({e})") from None
    first = images[0].size
    odd = [(f, im.size) for (_, f), im in zip(files, images) if im.size != first]
    if odd:
        (f, size), = odd[:1]
        raise DataError(f"{root}: images must all have one size; {files[0][1]} is "
                        f"{first[0]}x{first[1]} but {f} is {size[0]}x{size[1]}")
    x = np.stack([np.asarray(im, np.uint8) for im in images])
    if all(grey):
        x = x[..., :1]
    y = np.asarray([k for k, _ in files], np.int64)
    return make_image_set(x, y, source=f"{root} (image folders)",
                          class_names=tuple(d.name for d in classes))
