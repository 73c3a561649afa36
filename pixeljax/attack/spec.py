"""One attack's settings, in one frozen value: :class:`AttackSpec`.

Every way of starting an attack builds one: ``pixeljax attack`` from its options, a suite once
per cell, ``pixel_attack`` from its keyword arguments. The defaults (the paper's) live here and
nowhere else. :meth:`AttackSpec.to_config` is the part that decides the results, as recorded in
a results folder's ``config.json``; :meth:`AttackSpec.from_config` reads it back.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pixeljax.attack import validation
from pixeljax.attack.engine import AttackParams, EngineConfig
from pixeljax.de.core import STRATEGIES, DEParams
from pixeljax.errors import PixeljaxError
from pixeljax.models.precision import FLOAT32, check_precision
from pixeljax.modes import SWEEP, TARGET_MODES, Goal  # noqa: F401 (re-exported)


# Settings recorded in config.json; the engine sizes are left out: results do not depend on them.
RESULT_FIELDS = ("pixels", "mode", "target_class", "n_images", "first", "seed", "popsize",
                 "maxiter", "strategy", "F", "crossover", "target_threshold", "true_threshold")


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """An attack's settings, checked when made.

    Goal and selection:
      pixels: pixels changed per attack.
      goal: a :class:`Goal` (or its value, e.g. ``"all-targets"``).
      target_class: the class of a targeted attack (images of that class are not attacked).
      n_images: attack this many of the images (None: all of them).
      first: the first ``n_images``, not a random sample of them (seeded by ``seed``).
      seed: the attacks' random seed (each attack's stream is derived from it and the
        attack's id) and the sample's.

    Differential evolution and stopping (the paper's defaults):
      popsize, maxiter: population and generations after the initial one (400 and 100).
      strategy: "rand1" (the paper) or "best1".
      F: mutation factor, in (0, 2].
      crossover: binomial crossover rate in [0, 1]; None: no crossover (the paper).
      target_threshold: a targeted attack stops once the target's probability exceeds it.
      true_threshold: a non-targeted attack stops once the true class's probability falls
        below it; None: as soon as the image is misclassified.

    Scoring:
      precision: "float32" (the exact reference, the default) or "bfloat16" (weights and
        activations in bfloat16, float32 accumulation; every finished attack is re-checked in
        float32, so a reported class or success is float32's). ``config.json`` records it when
        it is not float32.

    Engine sizes (speed and memory only, never results):
      slots: attacks in flight (rounded up to a multiple of the device count).
      batch_size: images per model call and device (None: the platform's default, see
        ``sizes.default_batch_size``); at most ``slots x popsize`` per device are used.
      segment: generations per compiled segment between refills.
      dense: score every candidate by a full forward pass, not incrementally.
    """

    pixels: int = 1
    goal: Goal = Goal.NON_TARGETED
    target_class: int | None = None
    n_images: int | None = None
    first: bool = False
    seed: int = 0
    popsize: int = 400
    maxiter: int = 100
    strategy: str = "rand1"
    F: float = 0.5
    crossover: float | None = None
    target_threshold: float = 0.5
    true_threshold: float | None = None
    precision: str = FLOAT32
    slots: int = 32
    batch_size: int | None = None
    segment: int = 10
    dense: bool = False

    def __post_init__(self):
        try:
            object.__setattr__(self, "goal", Goal(self.goal))
        except ValueError:
            raise PixeljaxError(f"goal must be one of {[g.value for g in Goal]}, "
                                f"got {self.goal!r}") from None
        if self.goal is Goal.TARGETED:
            if not validation.is_int(self.target_class) or self.target_class < 0:
                raise PixeljaxError(f"a targeted attack needs target_class, a class >= 0, got "
                                    f"{self.target_class!r}")
            object.__setattr__(self, "target_class", int(self.target_class))
        elif self.target_class is not None:
            raise PixeljaxError(f"target_class is for targeted attacks only, not "
                                f"{self.goal.value} ones")
        validation.check_budget(self.pixels, self.popsize, self.maxiter, slots=self.slots,
                                batch_size=self.batch_size, segment=self.segment)
        if self.n_images is not None and (not validation.is_int(self.n_images)
                                          or self.n_images < 1):
            raise PixeljaxError(f"n_images must be an integer >= 1 (or None: all images), got "
                                f"{self.n_images!r}")
        if not validation.is_int(self.seed) or self.seed < 0:
            raise PixeljaxError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.strategy not in STRATEGIES:
            raise PixeljaxError(f"unknown strategy {self.strategy!r}; expected one of "
                                f"{STRATEGIES}")
        validation.check_attack_numbers(self.F, self.crossover, self.target_threshold,
                                        self.true_threshold)
        check_precision(self.precision)
        for name in ("first", "dense"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise PixeljaxError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def mode(self) -> str:
        """The goal as recorded in results: "non-targeted", "targeted" or "all-targets"."""
        return self.goal.value

    def replace(self, **changes) -> AttackSpec:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def with_options(self, **options) -> AttackSpec:
        """A copy with the ``options`` that are not None (a command line's unset options)."""
        return self.replace(**{k: v for k, v in options.items() if v is not None})

    def check_image_shape(self, image_shape) -> None:
        """The pixels fit in an image of ``image_shape`` (H, W, C)."""
        h, w = image_shape[:2]
        if self.pixels > h * w:
            raise PixeljaxError(f"pixels={self.pixels} is larger than the image "
                                f"({h}x{w} = {h * w})")

    def engine_config(self, batch_size: int) -> EngineConfig:
        """The engine's static sizes, with the micro-batch resolved to ``batch_size``."""
        return EngineConfig(pixels=self.pixels, popsize=self.popsize, maxiter=self.maxiter,
                            strategy=self.strategy, slots=self.slots, batch_size=batch_size,
                            segment=self.segment)

    def attack_params(self) -> AttackParams:
        """The numbers the compiled engine takes as data (no recompilation when they change)."""
        return AttackParams(
            de=DEParams(F=self.F, crossover_rate=1.0 if self.crossover is None
                        else self.crossover),
            target_threshold=self.target_threshold,
            true_threshold=-1.0 if self.true_threshold is None else self.true_threshold)

    def to_config(self) -> dict:
        """The settings that decide the results, as a results folder's ``config.json`` holds
        them (``mode`` is the goal's value)."""
        config = {k: getattr(self, k) for k in RESULT_FIELDS if k != "mode"}
        return {**config, "mode": self.mode, **precision_config(self.precision)}

    @classmethod
    def from_config(cls, config: dict, **engine) -> AttackSpec:
        """The spec a ``config.json`` records, with engine sizes from ``engine`` (or the
        defaults)."""
        try:
            values = {k: config[k] for k in RESULT_FIELDS if k != "mode"}
            mode = config["mode"]
        except KeyError as e:
            raise PixeljaxError(f"config.json records no {e.args[0]!r}: not the configuration "
                                f"of an attack run") from None
        return cls(goal=mode, **values, precision=config.get("precision", FLOAT32), **engine)


def precision_config(precision: str) -> dict:
    """What ``config.json`` records of the precision: nothing for float32 (folders written
    before the option existed are float32 ones), else ``{"precision": ...}``."""
    return {} if precision == FLOAT32 else {"precision": precision}


DEFAULTS = AttackSpec()
