"""Everything before a sweep's first wave: the inputs checked and the images selected (as an
attack's, :mod:`pixeljax.attack.selection`), one row planned per (image, other class), the
sweep's engine sizes resolved once, and the scorer picked."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from pixeljax.attack import scoring
from pixeljax.attack.encoding import PixelEncoding
from pixeljax.attack.pipeline import Planned, clean_probabilities
from pixeljax.attack.selection import select
from pixeljax.errors import PixeljaxError
from pixeljax.sweep.spec import SweepSpec, check_size


@dataclasses.dataclass(frozen=True)
class SweepPlan(Planned):
    """A sweep's :class:`~pixeljax.attack.pipeline.Planned` rows, with its spec."""

    spec: SweepSpec


def prepare(predict: Callable, images, labels, spec: SweepSpec, *, image_ids=None,
            devices: int | Sequence[jax.Device] | None = None,
            source: str = "the data") -> SweepPlan:
    """Checks, selection, the rows (one per image and other class), the sizes and the scorer.

    Raises:
      PixeljaxError: naming the first problem found.
    """
    if not isinstance(spec, SweepSpec):
        raise PixeljaxError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    selected = select(predict, images, labels, spec.selection, precision=spec.precision,
                      image_ids=image_ids, devices=devices, source=source)
    shape = selected.images.shape[1:]
    sizes = spec.resolved_sizes(shape, len(selected.devices), len(selected.images))
    check_size(spec, shape, sizes.slots)
    return SweepPlan(
        **selected.parts(), spec=spec, encoding=PixelEncoding(1), sizes=sizes,
        scorer=scoring.scorer_for(predict, pixels=1, threshold=False, dense=spec.sizes.dense,
                                  precision=spec.precision))


def check_some_correct(predict: Callable, plan: SweepPlan, source: str) -> np.ndarray:
    """The clean probabilities of the selected images; at least one must be classified
    correctly (only those are swept)."""
    probs = clean_probabilities(predict, plan)
    if len(probs) and not np.any(probs.argmax(-1) == plan.labels):
        raise PixeljaxError(f"the victim misclassifies every one of the {len(probs)} selected "
                            f"image(s) of {source}, so there is nothing to sweep; check that "
                            f"the data hold the images and labels the victim was trained for")
    return probs
