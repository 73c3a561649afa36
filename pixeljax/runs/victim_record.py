"""What a results folder attacked: the victim block of its ``config.json``, one small record
built by the command line (``cli/attack.py``) and by a suite's plan (``Plan.cell_victim``), and
read back by the analyses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pixeljax.errors import PixeljaxError

REQUIRED = ("model", "architecture", "checkpoint")


@dataclasses.dataclass(frozen=True)
class VictimRecord:
    """A victim as ``config.json`` records it.

    Attributes:
      model: the victim's name (a suite's victim name, or the architecture).
      architecture: the registry name, or ``module.path:factory``/``predict:...`` for a model
        of the user's own.
      checkpoint: a loadable reference (:mod:`pixeljax.victims.checkpoint_ref`).
      data, split: the attacked images' source and split.
      input_scale, outputs: how a model of the user's own was called, when given.
      layout: an ONNX model's input layout, when given (else detected again on load).
      defence: the input defence in front of the network, if any.
      suite: the suite a cell belongs to; with it ``checkpoint_exported``, the checkpoint's
        export time (None until the suite trained it), is always recorded.
      weights_sha256: a fingerprint of the weights, when the checkpoint records digests.
    """

    model: str
    architecture: str
    checkpoint: str
    data: str | None = None
    split: str | None = None
    input_scale: str | None = None
    outputs: str | None = None
    layout: str | None = None
    defence: str | None = None
    suite: str | None = None
    checkpoint_exported: str | None = None
    weights_sha256: str | None = None

    def __post_init__(self):
        missing = [k for k in REQUIRED if not getattr(self, k)]
        if missing:
            raise PixeljaxError(f"a results folder records what it attacked: "
                                f"{', '.join(missing)} missing")

    def to_config(self) -> dict:
        """The block of ``config.json``: the fields that are set (a suite's cell also records
        ``checkpoint_exported`` when it is None)."""
        order = ("suite", "model", "architecture", "checkpoint", "checkpoint_exported", "data",
                 "split", "input_scale", "outputs", "layout", "defence", "weights_sha256")
        kept = {"checkpoint_exported"} if self.suite is not None else set()
        return {k: getattr(self, k) for k in order
                if getattr(self, k) is not None or k in kept}

    @classmethod
    def of(cls, victim: VictimRecord | Mapping) -> VictimRecord:
        """``victim`` as a record (a mapping of its fields, e.g. in tests and notebooks).

        Raises:
          PixeljaxError: a required field is missing, or a key is no field.
        """
        if isinstance(victim, cls):
            return victim
        if not isinstance(victim, Mapping):
            raise PixeljaxError(f"victim must be a VictimRecord or a mapping of its fields, got "
                                f"{type(victim).__name__}")
        unknown = sorted(set(victim) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise PixeljaxError(f"victim has unknown field(s) {', '.join(unknown)}; the fields "
                                f"are those of VictimRecord")
        return cls(**{**dict.fromkeys(REQUIRED), **victim})  # a missing one: a clear error

    @classmethod
    def from_config(cls, config: Mapping) -> VictimRecord:
        """The record a ``config.json`` holds (its attack settings left out)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**dict.fromkeys(REQUIRED),
                      **{k: v for k, v in config.items() if k in names}})
