"""A training recipe: every number that decides a training run."""

from __future__ import annotations

import dataclasses
import math

from pixeljax.errors import PixeljaxError


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

    model: str
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.1
    warmup_epochs: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    crop_padding: int = 4
    flip: bool = True
    seed: int = 0
    checkpoint_every: int = 200
    eval_batch_size: int = 500
    init_from: str | None = None
    adversarial_fraction: float = 0.0
    adversarial: str = "random"
    adversarial_popsize: int = 20
    adversarial_generations: int = 5

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise PixeljaxError(f"training config: model must be a model name, got {self.model!r}")
        for name in ("epochs", "batch_size", "checkpoint_every", "eval_batch_size"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise PixeljaxError(f"training config: {name} must be a positive integer, "
                                    f"got {getattr(self, name)!r}")
        for name in ("crop_padding", "seed"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                raise PixeljaxError(f"training config: {name} must be an integer >= 0, "
                                    f"got {getattr(self, name)!r}")
        for name in ("learning_rate", "warmup_epochs", "momentum", "weight_decay",
                     "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PixeljaxError(f"training config: {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise PixeljaxError(f"training config: {name} must be a finite number, "
                                    f"got {value}")
        if not self.learning_rate > 0:
            raise PixeljaxError(f"training config: learning_rate must be > 0, "
                                f"got {self.learning_rate}")
        for name in ("warmup_epochs", "weight_decay", "label_smoothing"):
            if not getattr(self, name) >= 0:
                raise PixeljaxError(f"training config: {name} must be >= 0, "
                                    f"got {getattr(self, name)}")
        if not 0 <= self.momentum < 1 or not self.label_smoothing < 1:
            raise PixeljaxError("training config: momentum and label_smoothing must lie in [0, 1)")
        if self.init_from is not None and (not isinstance(self.init_from, str)
                                           or not self.init_from):
            raise PixeljaxError(f"training config: init_from must be a checkpoint folder, "
                                f"'shipped:NAME' or a training work dir, got {self.init_from!r}")
        self._check_adversarial()
        if not isinstance(self.flip, bool):
            raise PixeljaxError(f"training config: flip must be True or False, got {self.flip!r}")

    def _check_adversarial(self) -> None:
        from pixeljax.de.core import MIN_POPSIZE
        from pixeljax.training.adversarial import KINDS

        f = self.adversarial_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= 1:
            raise PixeljaxError(f"training config: adversarial_fraction must lie in (0, 1] "
                                f"(0: no adversarial training), got {f!r}")
        if self.adversarial not in KINDS:
            raise PixeljaxError(f"training config: unknown adversarial {self.adversarial!r}; "
                                f"expected one of {', '.join(KINDS)}")
        if not _is_int(self.adversarial_popsize) or self.adversarial_popsize < MIN_POPSIZE:
            raise PixeljaxError(f"training config: adversarial_popsize must be an integer >= "
                                f"{MIN_POPSIZE}, got {self.adversarial_popsize!r}")
        if not _is_int(self.adversarial_generations) or self.adversarial_generations < 0:
            raise PixeljaxError(f"training config: adversarial_generations must be an integer "
                                f">= 0, got {self.adversarial_generations!r}")

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
