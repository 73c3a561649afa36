"""A training recipe: every number that decides a training run."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from pixeljax._plumbing import settings
from pixeljax.de.core import MIN_POPSIZE
from pixeljax.errors import PixeljaxError
from pixeljax.training.adversarial import KINDS, RANDOM


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (SGD with Nesterov momentum, warm-up then cosine).

    Attributes:
      model: registry name of the architecture.
      epochs: passes over the training set; the schedule anneals to zero at the last one.
      batch_size: images per step (the last partial batch of an epoch is dropped).
      learning_rate: peak learning rate.
      warmup_epochs: linear warm-up length.
      momentum: Nesterov momentum.
      weight_decay: L2 decay on convolution and dense kernels.
      label_smoothing: cross-entropy label smoothing.
      crop_padding: random-crop padding in pixels (0 disables cropping).
      flip: random horizontal flips.
      seed: initialisation, data order and augmentation.
      checkpoint_every: steps between checkpoints (also saved at every epoch's end).
      eval_batch_size: images per evaluation batch.
      init_from: start from these weights instead of a random initialisation (fine-tuning): a
        victim checkpoint folder, ``shipped:NAME``, or a training work dir (its newest
        checkpoint). Only the weights are taken; the schedule starts afresh.
      adversarial_fraction: one-pixel adversarial training: this fraction of each batch (0:
        none) is replaced by one-pixel adversarial versions of its images
        (:mod:`pixeljax.training.adversarial`), found by ``adversarial``: "random" (a random
        pixel set to a random corner colour) or "de" (``adversarial_generations`` generations
        of the project's attack, population ``adversarial_popsize``, on the current weights).
    """

    # The adversarial settings, in the order a command line lists them.
    ADVERSARIAL: ClassVar[tuple[str, ...]] = ("adversarial_fraction", "adversarial",
                                              "adversarial_popsize", "adversarial_generations")

    model: str
    epochs: int = settings.count(30, 1, "passes over the training set")
    batch_size: int = settings.count(128, 1, "images per step")
    learning_rate: float = settings.number(0.1, 0, math.inf, "peak learning rate",
                                           low_open=True)
    warmup_epochs: float = settings.number(1.0, 0, math.inf, "linear warm-up length in epochs")
    momentum: float = settings.number(0.9, 0, 1, "Nesterov momentum", high_open=True)
    weight_decay: float = settings.number(5e-4, 0, math.inf, "L2 decay on kernels")
    label_smoothing: float = settings.number(0.0, 0, 1, "cross-entropy label smoothing",
                                             high_open=True)
    crop_padding: int = settings.count(4, 0, "random-crop padding in pixels")
    flip: bool = settings.flag(True, "random horizontal flips")
    seed: int = settings.count(0, 0, "seed of the initialisation, data order and augmentation")
    checkpoint_every: int = settings.count(200, 1, "steps between checkpoints")
    eval_batch_size: int = settings.count(500, 1, "images per evaluation batch")
    init_from: str | None = None
    adversarial_fraction: float = settings.number(
        0.0, 0, 1, "one-pixel adversarial training: replace this fraction of each batch by "
                   "one-pixel adversarial versions of its images (recorded in the victim's "
                   "metadata; 0: none)")
    adversarial: str = settings.choice(
        RANDOM, KINDS, "how they are found: 'random' (a random pixel set to a random corner "
                       "colour, cheap) or 'de' (a few generations of the project's attack on "
                       "the current weights)")
    adversarial_popsize: int = settings.count(20, MIN_POPSIZE, "DE population of --adversarial de")
    adversarial_generations: int = settings.count(5, 0, "DE generations of --adversarial de")

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise PixeljaxError(f"training config: model must be a model name, got {self.model!r}")
        settings.check_fields(self, "training config: ")
        if self.init_from is not None and (not isinstance(self.init_from, str)
                                           or not self.init_from):
            raise PixeljaxError(f"training config: init_from must be a checkpoint folder, "
                                f"'shipped:NAME' or a training work dir, got {self.init_from!r}")

    @property
    def adversarial_images(self) -> int:
        """Images of each batch replaced by adversarial versions (at least one when on)."""
        if not self.adversarial_fraction:
            return 0
        return max(1, round(self.adversarial_fraction * self.batch_size))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        """The recipe as JSON: the settings it uses (``init_from`` and the adversarial settings
        only when set, the DE's only when DE searches)."""
        d = dataclasses.asdict(self)
        if d["init_from"] is None:
            del d["init_from"]
        unused = (() if self.adversarial_fraction and self.adversarial == "de" else
                  DE_SEARCH if self.adversarial_fraction else ("adversarial_fraction",
                                                               "adversarial", *DE_SEARCH))
        for key in unused:
            del d[key]
        return d


DE_SEARCH = ("adversarial_popsize", "adversarial_generations")  # used by adversarial="de" only


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
