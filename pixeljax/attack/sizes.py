"""The engine's sizes (speed and memory, never results): :class:`EngineSizes`, part of every
attack's and sweep's spec, and resolved once per run for the platform and the devices."""

from __future__ import annotations

import dataclasses

from pixeljax._plumbing import settings

CPU_BATCH_SIZE = 64            # fastest per candidate on a CPU, and a few hundred MB
ACCELERATOR_BATCH_SIZE = 1024  # a GPU or TPU needs large calls to be busy
ATTACK_SLOTS = 32              # DE attacks in flight
SWEEP_SLOTS = 4                # images per sweep wave (a wave's rows are written together)
SEGMENT = 10                   # DE generations per compiled segment between refills
INT32_MAX = 2**31 - 1          # counts the compiled programs hold as int32
MAX_SLOTS = 2**20              # slots x population must index an int32 batch
FIELDS = ("slots", "batch_size", "segment", "dense")


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


@dataclasses.dataclass(frozen=True)
class EngineSizes:
    """How a run is laid out on the devices; results never depend on it. None: the default
    of the run (see :meth:`resolve`: 32 attacks in flight, a sweep's 4 images per wave)."""

    slots: int | None = settings.count(None, 1, "attacks in flight", optional=True,
                                       most=MAX_SLOTS, shown=ATTACK_SLOTS)
    batch_size: int | None = settings.count(
        None, 1, "images per model call and device, at most one generation of every slot of "
                 "a device", optional=True, most=INT32_MAX,
        shown=f"{CPU_BATCH_SIZE} on a CPU, {ACCELERATOR_BATCH_SIZE} on a GPU or TPU")
    segment: int | None = settings.count(None, 1, "DE generations between refills",
                                         optional=True, most=INT32_MAX, shown=SEGMENT)
    dense: bool = settings.flag(
        False, "score every candidate by a full forward pass (default: one-pixel attacks on "
               "AllConv, NiN, VGG16, ResNet-20 and tiny recompute only the activations the "
               "pixel reaches, behind any --defence too; other networks and multi-pixel "
               "attacks are scored densely)")

    def __post_init__(self):
        settings.check_fields(self)

    def replace(self, **changes) -> EngineSizes:
        return dataclasses.replace(self, **changes)

    def given(self) -> dict:
        """The sizes set (not None; ``dense`` when True), to lay over others' (so a dense
        ``EngineSizes`` underneath stays dense)."""
        return {k: v for k in FIELDS if (v := getattr(self, k)) is not None and v is not False}

    def resolve(self, *, per_slot: int, n_devices: int, default_slots: int = ATTACK_SLOTS,
                tasks: int | None = None, platform: str | None = None) -> EngineSizes:
        """The sizes in effect, every one given: slots rounded up to a multiple of
        ``n_devices``, and the micro-batch capped at what the slots can fill, ``per_slot``
        images (a DE population, a sweep's candidates) for each slot of a device; a larger one
        would only pad each call with wasted images. A run of ``tasks`` attacks (or images)
        keeps the default slots however few they are, so that one compiled program serves
        every run (idle slots cost memory only), and more slots than that only for as many
        tasks as there are."""
        slots = self.slots or default_slots
        slots = slot_count(min(slots, max(tasks, default_slots)) if tasks else slots, n_devices)
        batch = self.batch_size or default_batch_size(platform)
        return EngineSizes(slots=slots, batch_size=max(1, min(batch, slots // n_devices
                                                              * per_slot)),
                           segment=self.segment or SEGMENT, dense=self.dense)


def replace_in(spec, changes: dict):
    """A copy of the frozen ``spec`` (which has a ``sizes`` field) with ``changes``: its own
    fields or those of its :class:`EngineSizes` (checked again)."""
    own = {k: v for k, v in changes.items() if k not in FIELDS}
    sizes = {k: v for k, v in changes.items() if k in FIELDS}
    if sizes:
        own["sizes"] = own.get("sizes", spec.sizes).replace(**sizes)
    return dataclasses.replace(spec, **own)
