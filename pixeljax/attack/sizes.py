"""The engine's sizes (speed and memory, never results), resolved once per run for the platform
and the devices: :class:`EngineSizes` for the DE engine (part of every attack's spec) and
:class:`SweepSizes` for the sweep's waves (part of every sweep's spec)."""

from __future__ import annotations

import dataclasses

from pixeljax._plumbing import settings
from pixeljax.errors import PixeljaxError

CPU_BATCH_SIZE = 64            # fastest per candidate on a CPU, and a few hundred MB
ACCELERATOR_BATCH_SIZE = 1024  # a GPU or TPU needs large calls to be busy
ATTACK_SLOTS = 32              # DE attacks in flight
SWEEP_SLOTS = 4                # images per sweep wave (a wave's rows are written together)
SEGMENT = 10                   # DE generations per compiled segment between refills
INT32_MAX = 2**31 - 1          # counts the compiled programs hold as int32
MAX_SLOTS = 2**20              # slots x population must index an int32 batch
FIELDS = ("slots", "batch_size", "segment", "dense")  # every size either spec may hold
BATCH_SHOWN = f"{CPU_BATCH_SIZE} on a CPU, {ACCELERATOR_BATCH_SIZE} on a GPU or TPU"
DENSE_HELP = ("score every candidate by a full forward pass (default: one-pixel attacks on "
              "AllConv, NiN, VGG16, ResNet-20 and tiny recompute only the activations the "
              "pixel reaches, behind any --defence too; other networks and multi-pixel "
              "attacks are scored densely)")


def default_batch_size(platform: str | None = None) -> int:
    """The micro-batch (images per model call) used when none is given: small on a CPU, where
    XLA's convolutions are fastest on small batches and memory is a laptop's, large on an
    accelerator."""
    import jax

    platform = platform or jax.default_backend()
    return CPU_BATCH_SIZE if platform == "cpu" else ACCELERATOR_BATCH_SIZE


def slot_count(slots: int, n_devices: int) -> int:
    """Slots rounded up to a multiple of the device count (each device runs the same number)."""
    return -(-max(slots, 1) // n_devices) * n_devices


class _Sizes:
    """What the two kinds of sizes share: slots, the micro-batch, dense scoring, and how they
    are resolved (``DEFAULT_SLOTS``: the slots of a run that gives none)."""

    DEFAULT_SLOTS: int

    def __post_init__(self):
        settings.check_fields(self)

    def replace(self, **changes):
        """A copy with ``changes`` (checked again)."""
        unknown = sorted(set(changes) - set(self.fields()))
        if unknown:
            raise PixeljaxError(f"{', '.join(unknown)} is not one of the sizes of "
                                f"{type(self).__name__} ({', '.join(self.fields())})")
        return dataclasses.replace(self, **changes)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def given(self) -> dict:
        """The sizes set (not None; ``dense`` when True), to lay over others' (so a dense
        one underneath stays dense)."""
        return {k: v for k in self.fields() if (v := getattr(self, k)) is not None
                and v is not False}

    def resolve(self, *, per_slot: int, n_devices: int, tasks: int | None = None,
                platform: str | None = None):
        """The sizes in effect, every one given: slots rounded up to a multiple of
        ``n_devices``, and the micro-batch capped at what the slots can fill, ``per_slot``
        images (a DE population, a sweep's candidates) for each slot of a device; a larger one
        would only pad each call with wasted images. A run of ``tasks`` attacks (or images)
        keeps the default slots however few they are, so that one compiled program serves
        every run (idle slots cost memory only), and more slots than that only for as many
        tasks as there are."""
        default = self.DEFAULT_SLOTS
        slots = self.slots or default
        slots = slot_count(min(slots, max(tasks, default)) if tasks else slots, n_devices)
        batch = self.batch_size or default_batch_size(platform)
        return dataclasses.replace(self, slots=slots, batch_size=max(1, min(
            batch, slots // n_devices * per_slot)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class EngineSizes(_Sizes):
    """How a DE run is laid out on the devices; results never depend on it. None: the default
    of the run (see :meth:`resolve`: 32 attacks in flight, 10 generations per segment)."""

    DEFAULT_SLOTS = ATTACK_SLOTS

    slots: int | None = settings.count(None, 1, "attacks in flight", optional=True,
                                       most=MAX_SLOTS, shown=ATTACK_SLOTS)
    batch_size: int | None = settings.count(
        None, 1, "images per model call and device, at most one generation of every slot of "
                 "a device", optional=True, most=INT32_MAX, shown=BATCH_SHOWN)
    segment: int | None = settings.count(None, 1, "DE generations between refills",
                                         optional=True, most=INT32_MAX, shown=SEGMENT)
    dense: bool = settings.flag(False, DENSE_HELP)

    def resolve(self, **kwargs) -> EngineSizes:
        return super().resolve(**kwargs).replace(segment=self.segment or SEGMENT)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepSizes(_Sizes):
    """How a sweep is laid out on the devices; results never depend on it. None: the default
    of the run (see :meth:`resolve`: 4 images per wave)."""

    DEFAULT_SLOTS = SWEEP_SLOTS

    slots: int | None = settings.count(None, 1, "images swept at once", optional=True,
                                       most=MAX_SLOTS, shown=SWEEP_SLOTS)
    batch_size: int | None = settings.count(
        None, 1, "candidates per model call and device", optional=True, most=INT32_MAX,
        shown=BATCH_SHOWN)
    dense: bool = settings.flag(False, DENSE_HELP)

    @classmethod
    def of(cls, sizes: EngineSizes) -> SweepSizes:
        """The sizes of a suite's (or a command line's) :class:`EngineSizes` that a sweep
        takes (all but the DE's ``segment``)."""
        return cls(**{k: getattr(sizes, k) for k in cls.fields()})


def replace_in(spec, changes: dict):
    """A copy of the frozen ``spec`` (which has a ``sizes`` field) with ``changes``: its own
    fields or those of its sizes (checked again)."""
    own = {k: v for k, v in changes.items() if k not in FIELDS}
    sizes = {k: v for k, v in changes.items() if k in FIELDS}
    if sizes:
        own["sizes"] = own.get("sizes", spec.sizes).replace(**sizes)
    return dataclasses.replace(spec, **own)
