"""One attack's settings, in one frozen value: :class:`AttackSpec`.

Every way of starting an attack builds one: ``pixeljax attack`` from its options, a suite once
per cell, ``pixel_attack`` from its keyword arguments. The defaults (the DE as the paper
describes it) live here and nowhere else. :meth:`AttackSpec.to_config` is the part that decides
the results, as recorded in a results folder's ``config.json``; :meth:`AttackSpec.from_config`
reads it back.
"""

from __future__ import annotations

import dataclasses
import importlib.util

from pixeljax._plumbing import settings
from pixeljax._plumbing.settings import is_int
from pixeljax.attack.engine import AttackParams, EngineConfig
from pixeljax.attack.search import SEARCHES
from pixeljax.attack.selection import Selection, first_field, n_images_field, seed_field
from pixeljax.attack.sizes import INT32_MAX, EngineSizes, replace_in
from pixeljax.de.core import MIN_POPSIZE, STRATEGIES, DEParams
from pixeljax.errors import PixeljaxError
from pixeljax.models.precision import FLOAT32, check_precision
from pixeljax.runs.modes import GOALS, Mode

# Settings recorded in config.json; the engine sizes are left out: results do not depend on them.
RESULT_FIELDS = ("pixels", "mode", "target_class", "n_images", "first", "seed", "popsize",
                 "maxiter", "strategy", "F", "crossover", "target_threshold", "true_threshold")
OPTIONAL_RESULT_FIELDS = {"dither": 0.0, "threshold": None, "search": "de"}  # recorded when not at this value
MAX_POPSIZE = 2**20  # a population x the slots must index an int32 batch
# The settings a command line sets one option each (``settings.add_options``).
OPTION_FIELDS = ("pixels", "threshold", "search", "seed", "popsize", "maxiter", "strategy", "F", "dither",
                 "crossover", "target_threshold", "true_threshold")


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """An attack's settings, checked when made.

    Mode and selection:
      pixels: pixels changed per attack (the pixel attack, L0).
      threshold: None (the pixel attack), or the threshold attack's bound ``th`` (an integer in
        [1, 255]): every pixel value changes by at most ``th`` (L-infinity; Kotyan & Vargas,
        arXiv 1906.06026), the image clipped to [0, 255]; ``pixels`` stays 1. ``config.json``
        records it, with ``pixels`` null.
      goal: a :class:`Mode` of a DE attack (or its value, e.g. ``"all-targets"``).
      target_class: the class of a targeted attack (images of that class are not attacked).
      n_images: attack this many of the images (None: all of them).
      first: the first ``n_images``, not a random sample of them (seeded by ``seed``).
      seed: the attacks' random seed (each attack's stream is derived from it and the
        attack's id) and the sample's.

    Search and stopping (defaults: the DE as the paper describes it):
      search: "de" (the project's DE) or "cmaes" (threshold attacks only: evosax's separable
        CMA-ES started at the clean image with step th / 4, as Kotyan & Vargas' code starts
        its CMA-ES; ``popsize`` and ``maxiter`` are its population and generations). Recorded
        when not "de".
      popsize, maxiter: population and generations after the initial one (400 and 100).
      strategy: "rand1" (the paper) or "best1".
      F: mutation factor, in (0, 2].
      dither: each generation draws the factor from [F, F + dither) (0: F fixed, the paper;
        SciPy's and ART's DE use F = 0.5, dither = 0.5). Recorded when not 0.
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
      sizes: an :class:`~pixeljax.attack.sizes.EngineSizes` (slots, micro-batch, segment,
        dense scoring), resolved once per run for the platform and the devices.
      :meth:`replace` and ``pixel_attack`` also take its fields directly (``slots=8``).
    """

    pixels: int = settings.count(1, 1, "pixels changed per attack")
    threshold: int | None = settings.count(
        None, 1, "the threshold (L-infinity) attack instead: change every pixel value by at "
                 "most TH, an integer in [1, 255] (Kotyan & Vargas 2019; scored densely). "
                 "Its budget defaults to the pixel attack's (--popsize 400, --maxiter 100); "
                 "the authors' code (DualQualityAssessment) and ART's ThresholdAttack run "
                 "SciPy's DE with max(1, 400 // D) x D members, D the pixel values: "
                 "--popsize 3072 on CIFAR-10, 100 generations", optional=True, most=255)
    goal: Mode = Mode.NON_TARGETED
    target_class: int | None = None
    n_images: int | None = n_images_field()
    first: bool = first_field()
    seed: int = seed_field("random seed of the attacks and the sample")
    popsize: int = settings.count(400, MIN_POPSIZE, "DE population", most=MAX_POPSIZE)
    maxiter: int = settings.count(100, 0, "DE generations after the initial population",
                                  most=INT32_MAX)
    search: str = settings.choice(
        "de", SEARCHES, "how a threshold attack searches: de (the project's DE) or cmaes "
                        "(evosax's separable CMA-ES from the clean image, step TH/4, as Kotyan "
                        "& Vargas' code and ART's start theirs; needs evosax; --popsize and "
                        "--maxiter are its population and generations; their budget: "
                        "max(1, 400 // D) x D x 100 evaluations, e.g. --popsize 28 --maxiter "
                        "10972 on CIFAR-10); the pixel attack searches by DE")
    strategy: str = settings.choice("rand1", STRATEGIES, "DE strategy")
    F: float = settings.number(0.5, 0, 2, "DE mutation factor, in (0, 2]", low_open=True)
    dither: float = settings.number(
        0.0, 0, 2, "draw the mutation factor from [F, F + dither) each generation; 0 keeps F "
                   "fixed (SciPy and ART: F 0.5, dither 0.5)")
    crossover: float | None = settings.number(
        None, 0, 1, "binomial crossover rate in [0, 1] (default none)", optional=True,
        label="crossover rate")
    target_threshold: float = settings.number(
        0.5, 0, 1, "a targeted attack stops once the target's probability exceeds it",
        label="target threshold")
    true_threshold: float | None = settings.number(
        None, 0, 1, "a non-targeted attack stops once the true class's probability falls "
                    "below it (default: once the image is misclassified)", optional=True,
        label="true threshold")
    precision: str = FLOAT32
    sizes: EngineSizes = EngineSizes()

    def __post_init__(self):
        try:
            object.__setattr__(self, "goal", Mode(self.goal))
        except ValueError:
            pass
        if self.goal not in GOALS:
            sweep = " (the sweep is pixel_sweep and SweepSpec)" if self.goal == Mode.SWEEP else ""
            raise PixeljaxError(f"goal must be one of {[g.value for g in GOALS]}, "
                                f"got {getattr(self.goal, 'value', self.goal)!r}{sweep}")
        if self.goal is Mode.TARGETED:
            if not is_int(self.target_class) or self.target_class < 0:
                raise PixeljaxError(f"a targeted attack needs target_class, a class >= 0, got "
                                    f"{self.target_class!r}")
            object.__setattr__(self, "target_class", int(self.target_class))
        elif self.target_class is not None:
            raise PixeljaxError(f"target_class is for targeted attacks only, not "
                                f"{self.goal.value} ones")
        settings.check_fields(self)
        if self.threshold is not None and self.pixels != 1:
            raise PixeljaxError(f"a threshold attack changes every pixel value: pixels "
                                f"(={self.pixels}) is for the pixel attack; give threshold or "
                                f"pixels, not both")
        if self.search == "cmaes":
            if self.threshold is None:
                raise PixeljaxError("search cmaes is for the threshold attack (give threshold); "
                                    "the pixel attack searches by de")
            if importlib.util.find_spec("evosax") is None:
                raise PixeljaxError("search cmaes needs evosax: pip install evosax (or "
                                    "search de)")
        check_precision(self.precision)
        if not isinstance(self.sizes, EngineSizes):
            raise PixeljaxError(f"sizes must be an EngineSizes, got {type(self.sizes).__name__}")

    @property
    def mode(self) -> str:
        """The goal as recorded in results: "non-targeted", "targeted" or "all-targets"."""
        return self.goal.value

    @property
    def selection(self) -> Selection:
        """The images and rows this spec selects (shared with the sweep's selection)."""
        return Selection(mode=self.goal, target_class=self.target_class,
                         n_images=self.n_images, first=self.first, seed=self.seed)

    def replace(self, **changes) -> AttackSpec:
        """A copy with ``changes`` (checked again): fields of the spec or of its sizes."""
        return replace_in(self, changes)

    def with_options(self, **options) -> AttackSpec:
        """A copy with the ``options`` that are not None (a command line's unset options)."""
        return self.replace(**{k: v for k, v in options.items() if v is not None})

    def check_image_shape(self, image_shape) -> None:
        """The pixels fit in an image of ``image_shape`` (H, W, C)."""
        h, w = image_shape[:2]
        if self.pixels > h * w:
            raise PixeljaxError(f"pixels={self.pixels} is larger than the image "
                                f"({h}x{w} = {h * w})")

    def resolved_sizes(self, n_devices: int, attacks: int | None = None) -> EngineSizes:
        """The engine sizes of a run of ``attacks`` attacks of this spec on ``n_devices``
        devices."""
        return self.sizes.resolve(per_slot=self.popsize, n_devices=n_devices, tasks=attacks)

    def engine_config(self, sizes: EngineSizes) -> EngineConfig:
        """The engine's static sizes, of the resolved ``sizes``."""
        return EngineConfig(pixels=self.pixels, popsize=self.popsize, maxiter=self.maxiter,
                            strategy=self.strategy, slots=sizes.slots,
                            batch_size=sizes.batch_size, segment=sizes.segment,
                            threshold=self.threshold is not None, search=self.search)

    def attack_params(self) -> AttackParams:
        """The numbers the compiled engine takes as data (no recompilation when they change)."""
        return AttackParams(
            de=DEParams(F=self.F, crossover_rate=1.0 if self.crossover is None
                        else self.crossover, dither=self.dither),
            target_threshold=self.target_threshold,
            true_threshold=-1.0 if self.true_threshold is None else self.true_threshold,
            threshold=float(self.threshold or 0))

    def to_config(self) -> dict:
        """The settings that decide the results, as a results folder's ``config.json`` holds
        them (``mode`` is the goal's value)."""
        config = {k: getattr(self, k) for k in RESULT_FIELDS if k != "mode"}
        config.update({k: getattr(self, k) for k, default in OPTIONAL_RESULT_FIELDS.items()
                       if getattr(self, k) != default})
        if self.threshold is not None:
            config["pixels"] = None  # every pixel value changes
        return {**config, "mode": self.mode, **precision_config(self.precision)}

    @classmethod
    def from_config(cls, config: dict, sizes: EngineSizes = EngineSizes()) -> AttackSpec:
        """The spec a ``config.json`` records, with the engine ``sizes``."""
        try:
            values = {k: config[k] for k in RESULT_FIELDS if k != "mode"}
            mode = config["mode"]
        except KeyError as e:
            raise PixeljaxError(f"config.json records no {e.args[0]!r}: not the configuration "
                                f"of an attack run") from None
        optional = {k: config.get(k, default) for k, default in OPTIONAL_RESULT_FIELDS.items()}
        if values["pixels"] is None and optional["threshold"] is not None:
            del values["pixels"]  # a threshold attack's
        return cls(goal=mode, **values, **optional, precision=config.get("precision", FLOAT32),
                   sizes=sizes)


def precision_config(precision: str) -> dict:
    """What ``config.json`` records of the precision: nothing for float32 (the default, like
    the other optional fields), else ``{"precision": ...}``."""
    return {} if precision == FLOAT32 else {"precision": precision}


DEFAULTS = AttackSpec()
