"""The devices a run uses and the compiled programs over them, shared by the DE engine and the
sweep: slots are split evenly along a one-axis mesh (``jax.make_mesh`` + ``NamedSharding``;
one device is a one-device mesh), everything else is replicated. Programs are built once per
owner, configuration and set of devices, and each compiles once per input shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from pixeljax.errors import PixeljaxError

SLOT_AXIS = "slots"  # the mesh axis the slots are split along
SPLIT, REPLICATED = P(SLOT_AXIS), P()  # partition specs of per-slot and shared values


def local_devices(devices: int | Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """The devices an attack run uses: by default all of this process's devices.

    Args:
      devices: None (all local devices), a count ``n`` (the first ``n`` local devices) or a
        sequence of local devices.

    Raises:
      PixeljaxError: a count outside [1, local devices], or devices not of this process.
    """
    local = jax.local_devices()
    if devices is None:
        return local
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(local):
            raise PixeljaxError(f"devices must be between 1 and the {len(local)} "
                                f"{local[0].platform.upper()} device(s) this process sees, "
                                f"got {devices}")
        return local[:int(devices)]
    chosen = list(devices)
    if not chosen or len(set(chosen)) != len(chosen) or any(d not in local for d in chosen):
        raise PixeljaxError(f"devices must be distinct devices of this process "
                            f"({len(local)} available), got {chosen}")
    return chosen


@dataclasses.dataclass(frozen=True)
class Programs:
    """Compiled functions over one slot mesh, with the shardings of their split (per-slot) and
    replicated inputs."""

    slots: NamedSharding
    replicated: NamedSharding
    functions: dict[str, Callable]

    def __getitem__(self, name: str) -> Callable:
        return self.functions[name]


_CACHE: dict[tuple[str, Hashable, tuple[jax.Device, ...]], Programs] = {}


def programs(owner: str, key: Hashable, devices: tuple[jax.Device, ...],
             build: Callable[[jax.sharding.Mesh], dict[str, Callable]]) -> Programs:
    """``owner``'s programs for ``key`` (its static configuration) on ``devices``:
    ``build(mesh)`` (jitted functions by name) runs once per owner, key and devices."""
    if (owner, key, devices) not in _CACHE:
        mesh = jax.make_mesh((len(devices),), (SLOT_AXIS,), devices=devices)
        _CACHE[owner, key, devices] = Programs(NamedSharding(mesh, SPLIT),
                                               NamedSharding(mesh, REPLICATED), build(mesh))
    return _CACHE[owner, key, devices]


def compiled(owner: str) -> int:
    """How many programs ``owner`` has compiled so far (over every configuration, set of
    devices and input shape): the same shapes must not add any."""
    return sum(f._cache_size() for (o, *_), p in _CACHE.items() if o == owner
               for f in p.functions.values())
