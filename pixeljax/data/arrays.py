"""The in-memory form of a labelled image set, and its validation."""

from __future__ import annotations

import dataclasses

import numpy as np

from pixeljax.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Images as uint8 NHWC in [0, 255] with integer labels.

    Attributes:
      x: (N, H, W, C) uint8 images.
      y: (N,) int32 labels in [0, num_classes).
      index: (N,) int64 position of each image in its source split.
      source: a human-readable description of where the images came from.
      class_names: names of the classes, in label order.
    """

    x: np.ndarray
    y: np.ndarray
    index: np.ndarray
    source: str
    class_names: tuple[str, ...] = CIFAR10_CLASSES

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def take(self, positions) -> "ImageSet":
        """The subset at ``positions`` (indices into this set)."""
        positions = np.asarray(positions, np.int64)
        return dataclasses.replace(self, x=self.x[positions], y=self.y[positions],
                                   index=self.index[positions])


def max_index(num_classes: int) -> int:
    """The largest image index an attack id can hold: ids (``index * classes + class``) are
    32-bit integers in the attack engine."""
    return (2**31 - 1) // max(num_classes, 1) - 1


def default_class_names(y) -> tuple[str, ...]:
    """CIFAR-10's names for labels below 10, else ``class 0``, ``class 1``, ..."""
    y = np.asarray(y)
    top = int(y.max()) + 1 if y.size and np.issubdtype(y.dtype, np.integer) else 0
    return CIFAR10_CLASSES if top <= 10 else tuple(f"class {k}" for k in range(top))


def make_image_set(x, y, *, source: str, index=None,
                   class_names: tuple[str, ...] | None = CIFAR10_CLASSES) -> ImageSet:
    """Validates arrays and wraps them in an :class:`ImageSet` (``class_names`` None: see
    :func:`default_class_names`).

    Raises:
      DataError: naming the problem if shapes, dtypes or label ranges are wrong.
    """
    x, y = np.asarray(x), np.asarray(y)
    if class_names is None:
        class_names = default_class_names(y)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{source}: images must be NHWC with 1 or 3 channels, got shape {x.shape}")
    if x.dtype != np.uint8:
        raise DataError(f"{source}: images must be uint8 in [0, 255], got dtype {x.dtype}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{source}: labels must have shape ({len(x)},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: labels must be integers, got dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= len(class_names)):
        raise DataError(f"{source}: labels must lie in [0, {len(class_names) - 1}], "
                        f"got values from {y.min()} to {y.max()}")
    if index is None:
        index = np.arange(len(y), dtype=np.int64)
    else:
        index = np.asarray(index)
        if index.shape != y.shape or not np.issubdtype(index.dtype, np.integer):
            raise DataError(f"{source}: 'index' must hold {len(y)} integers, got "
                            f"{index.dtype} {index.shape}")
        index = index.astype(np.int64)
        limit = max_index(len(class_names))
        if len(index) and (index.min() < 0 or index.max() > limit):
            raise DataError(f"{source}: 'index' values must lie in [0, {limit}] (positions in "
                            f"the source split), got values from {index.min()} to "
                            f"{index.max()}")
        values, counts = np.unique(index, return_counts=True)
        if (counts > 1).any():
            raise DataError(f"{source}: 'index' must name each image once, but "
                            f"{values[counts > 1][:5].tolist()} occur more than once; attacks "
                            f"are identified by it")
    return ImageSet(x=x, y=y.astype(np.int32), index=index, source=source,
                    class_names=tuple(class_names))
