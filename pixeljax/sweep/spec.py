"""A sweep's settings, in one frozen value: :class:`SweepSpec` (the colour grid, the images,
the precision and the sweep's own engine sizes).

The exhaustive one-pixel sweep scores every position of an image with every colour of a small
grid (by default the 2^C corners of the colour cube, as Croce & Hein's CornerSearch, ICCV 2019);
one candidate's logits answer every class, so one pass serves all K - 1 targets.
"""

from __future__ import annotations

import dataclasses

from pixeljax._plumbing import settings
from pixeljax._plumbing.notices import note
from pixeljax._plumbing.settings import is_int
from pixeljax.attack.selection import Selection, first_field, n_images_field, seed_field
from pixeljax.attack.sizes import SweepSizes, replace_in
from pixeljax.attack.spec import precision_config
from pixeljax.errors import PixeljaxError
from pixeljax.models.precision import FLOAT32, check_precision
from pixeljax.runs.modes import Mode

CORNERS = (0, 255)
MANY_LEVELS = 16  # above this many levels per channel the run is large: say so


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep's settings, checked when made.

    Attributes:
      levels: the values each channel takes (the grid is every combination: ``len(levels)^C``
        colours); default the colour cube's corners, 0 and 255.
      n_images, first, seed: the selection, as in :class:`~pixeljax.attack.spec.AttackSpec`.
      sizes: the engine sizes (:class:`~pixeljax.attack.sizes.SweepSizes`): ``slots`` images
        swept at once (default 4; rounded up to a multiple of the device count),
        ``batch_size`` candidates per model call and device, ``dense`` scoring.
        :meth:`replace` also takes these fields directly.
      precision: "float32" or "bfloat16" scoring (every reported candidate is re-checked in
        float32 either way; the maps are the scoring precision's).
    """

    levels: tuple[int, ...] = CORNERS
    n_images: int | None = n_images_field()
    first: bool = first_field()
    seed: int = seed_field("the sample's seed")
    precision: str = FLOAT32
    sizes: SweepSizes = SweepSizes()

    def __post_init__(self):
        try:
            levels = tuple(self.levels)
        except TypeError:
            raise PixeljaxError(f"levels must be a sequence of values in [0, 255], got "
                                f"{self.levels!r}") from None
        if not levels:
            raise PixeljaxError("levels is empty: give at least one value in [0, 255]")
        if not all(is_int(v) and 0 <= v <= 255 for v in levels):
            raise PixeljaxError(f"levels must be integers in [0, 255], got {list(levels)}")
        object.__setattr__(self, "levels", tuple(sorted({int(v) for v in levels})))
        if not isinstance(self.sizes, SweepSizes):
            raise PixeljaxError(f"sizes must be a SweepSizes, got {type(self.sizes).__name__}")
        settings.check_fields(self)
        check_precision(self.precision)

    @property
    def selection(self) -> Selection:
        """The images it sweeps and its rows: one per (image, other class)."""
        return Selection(mode=Mode.SWEEP, target_class=None, n_images=self.n_images,
                         first=self.first, seed=self.seed)

    @property
    def mode(self) -> str:
        return Mode.SWEEP.value

    @property
    def pixels(self) -> int:
        return 1

    def colours(self, channels: int) -> int:
        return len(self.levels) ** channels

    def candidates(self, image_shape) -> int:
        """Candidates scored per image."""
        h, w, c = image_shape
        return h * w * self.colours(c)

    def replace(self, **changes) -> SweepSpec:
        """A copy with ``changes`` (checked again): fields of the spec or of its sizes."""
        return replace_in(self, changes)

    def resolved_sizes(self, image_shape, n_devices: int,
                       images: int | None = None) -> SweepSizes:
        """The engine sizes of a sweep of ``images`` images on ``n_devices`` devices."""
        return self.sizes.resolve(per_slot=self.candidates(image_shape), n_devices=n_devices,
                                  tasks=images)

    def to_config(self) -> dict:
        """The settings that decide the results (a results folder's ``config.json``)."""
        return {"mode": Mode.SWEEP.value, "pixels": 1, "levels": list(self.levels),
                "n_images": self.n_images, "first": self.first, "seed": self.seed,
                **precision_config(self.precision)}

    @classmethod
    def from_config(cls, config: dict, sizes: SweepSizes = SweepSizes()) -> SweepSpec:
        try:
            return cls(levels=tuple(config["levels"]), n_images=config["n_images"],
                       first=config["first"], seed=config["seed"],
                       precision=config.get("precision", FLOAT32), sizes=sizes)
        except KeyError as e:
            raise PixeljaxError(f"config.json records no {e.args[0]!r}: not the configuration "
                                f"of a sweep") from None


def parse_levels(text: str) -> tuple[int, ...]:
    """``"0,128,255"`` as levels (for the command line)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise PixeljaxError(f"--levels takes comma-separated integers in [0, 255], got "
                            f"{text!r}") from None


def check_size(spec: SweepSpec, image_shape, slots: int) -> None:
    """The candidate indices of a wave of ``slots`` images (the resolved sizes') fit in
    int32."""
    if slots * spec.candidates(image_shape) >= 2 ** 31:
        raise PixeljaxError(f"{spec.candidates(image_shape):,} candidates per image x "
                            f"{slots} slots is more than one wave can index; use fewer "
                            f"slots or levels")


def announce(spec: SweepSpec, image_shape, images: int) -> None:
    """One line on the size of a large grid before it starts (the user's call)."""
    if len(spec.levels) > MANY_LEVELS:
        note(f"{len(spec.levels)} levels per channel: {spec.colours(image_shape[-1]):,} colours, "
             f"{spec.candidates(image_shape):,} candidates per image, "
             f"{spec.candidates(image_shape) * images:,} in all; the progress bar shows the "
             f"time left once the first wave is done")


__all__ = ["CORNERS", "SweepSpec", "announce", "check_size", "parse_levels"]
