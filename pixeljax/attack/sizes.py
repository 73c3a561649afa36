"""The engine's sizes that depend on the platform and the devices, resolved in one place."""

from __future__ import annotations

CPU_BATCH_SIZE = 64            # fastest per candidate on a CPU, and a few hundred MB
ACCELERATOR_BATCH_SIZE = 1024  # a GPU or TPU needs large calls to be busy


def default_batch_size(platform: str | None = None) -> int:
    """The micro-batch (images per model call) used when none is given: small on a CPU, where
    XLA's convolutions are fastest on small batches and memory is a laptop's, large on an
    accelerator."""
    import jax

    platform = platform or jax.default_backend()
    return CPU_BATCH_SIZE if platform == "cpu" else ACCELERATOR_BATCH_SIZE


def micro_batch(batch_size: int | None, slots: int, popsize: int, n_devices: int = 1) -> int:
    """The images per model call that the slots can fill: ``batch_size`` (None: the
    platform's default), at most one generation of every slot of a device (``slots`` are
    shared evenly by ``n_devices``). A larger batch would only pad each call with wasted
    images."""
    if batch_size is None:
        batch_size = default_batch_size()
    per_device = -(-max(slots, 1) // max(n_devices, 1))
    return max(1, min(batch_size, per_device * popsize))
