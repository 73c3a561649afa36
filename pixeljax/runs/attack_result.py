"""One attack result, in one columnar record: :class:`AttackResult`.

The engine fills it (a batch per harvest), a results folder writes it as CSV rows and reads it
back (:meth:`AttackResult.from_folder`), ``pixel_attack`` returns it, and the statistics, the
report and the analyses take it. Leading axis A: one entry per attack.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pixeljax.errors import PixeljaxError
from pixeljax.runs import results


class Status(enum.StrEnum):
    """What became of an attack (as ``results.csv`` spells it)."""

    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"  # the image was misclassified to begin with: not attacked


_DTYPES = {"attack_id": np.int64, "image_index": np.int64, "label": np.int32,
           "target": np.int32, "status": "<U7", "adversarial_class": np.int32,
           "confidence": np.float32, "true_prob_before": np.float32,
           "true_prob_after": np.float32, "perturbation": np.float32, "generations": np.int64,
           "evaluations": np.int64, "nonfinite": np.int64, "precision_flip": bool}
# CSV columns whose name differs from the field's.
_COLUMN = {"nonfinite": "nonfinite_evaluations"}


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """Per-attack results, columnar (each field an array over the A attacks).

    Attributes:
      attack_id: the id each attack's random stream is derived from.
      image_index: the attacked image's id (``ImageSet.index``, or ``pixel_attack``'s
        ``image_ids``: by default its position in the input batch).
      label, target: true class and target (-1 for non-targeted attacks).
      status: a :class:`Status` value per attack.
      adversarial_class: the class the final adversarial image is given (a skipped image's:
        its clean class).
      confidence: that class's probability.
      true_prob_before, true_prob_after: the true class's probability on the clean and the
        adversarial image.
      perturbation: (A, pixels, 2 + C) (x, y, colour...) as applied; (A, 0, 2 + C) for a
        threshold attack, whose change is ``delta``.
      generations, evaluations: DE generations and model evaluations used.
      nonfinite: evaluations whose logits were NaN or infinite (scored as the worst fitness,
        never a success).
      precision_flip: the float32 re-check reversed the success a lower-precision score gave.
      adversarial: (A, H, W, C) the adversarial images, where the images are at hand
        (``pixel_attack``); None for a record read from a folder.
      delta: a threshold attack's (A, H, W, C) int16 change of every pixel value (added to the
        clean image, then clipped to [0, 255]); None for a pixel attack.
    """

    attack_id: np.ndarray
    image_index: np.ndarray
    label: np.ndarray
    target: np.ndarray
    status: np.ndarray
    adversarial_class: np.ndarray
    confidence: np.ndarray
    true_prob_before: np.ndarray
    true_prob_after: np.ndarray
    perturbation: np.ndarray
    generations: np.ndarray
    evaluations: np.ndarray
    nonfinite: np.ndarray
    precision_flip: np.ndarray
    adversarial: np.ndarray | None = None
    delta: np.ndarray | None = None

    def __post_init__(self):
        for name, dtype in _DTYPES.items():
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype))
        if self.delta is not None:
            object.__setattr__(self, "delta", np.asarray(self.delta, np.int16))
            if self.delta.ndim != 4 or len(self.delta) != len(self.attack_id):
                raise PixeljaxError(f"delta must be (attacks, H, W, C), one per attack, got "
                                    f"shape {self.delta.shape}")
        if self.perturbation.ndim != 3:
            raise PixeljaxError(f"perturbation must be (attacks, pixels, 2 + channels), got "
                                f"shape {self.perturbation.shape}")
        unknown = set(np.unique(self.status)) - set(Status)
        if unknown:
            raise PixeljaxError(f"unknown attack status {sorted(unknown)}; expected one of "
                                f"{[s.value for s in Status]}")

    def __len__(self) -> int:
        return len(self.attack_id)

    @property
    def success(self) -> np.ndarray:
        """(A,) the attack reached its goal (never true for a skipped image)."""
        return self.status == Status.SUCCESS

    @property
    def skipped(self) -> np.ndarray:
        """(A,) the image was misclassified to begin with, so it was not attacked."""
        return self.status == Status.SKIPPED

    @property
    def pixels(self) -> int:
        return self.perturbation.shape[1]

    @property
    def channels(self) -> int:
        return self.perturbation.shape[2] - 2

    @property
    def candidates(self) -> np.ndarray:
        """(A, pixels * (2 + C)) the perturbations as ``attack.perturb`` applies them."""
        return self.perturbation.reshape(len(self), self.pixels * (2 + self.channels))

    @property
    def threshold(self) -> bool:
        """Results of a threshold attack (every pixel value changed by ``delta``)."""
        return self.delta is not None

    def take(self, selection) -> AttackResult:
        """The attacks at ``selection`` (indices or a boolean mask)."""
        return dataclasses.replace(self, **{
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[selection]
            for f in dataclasses.fields(self)})

    def attacked(self) -> AttackResult:
        """The attacks that ran (successful or failed), skipped images left out."""
        return self.take(~self.skipped)

    def in_order(self, attack_ids: Sequence[int]) -> AttackResult:
        """The attacks with these ids, in this order (each must be present)."""
        where = {int(a): k for k, a in enumerate(self.attack_id)}
        missing = [a for a in attack_ids if int(a) not in where]
        if missing:
            raise PixeljaxError(f"attacks {missing[:5]} have no result")
        return self.take(np.asarray([where[int(a)] for a in attack_ids], np.int64))

    def per_image(self) -> dict[int, np.ndarray]:
        """Each image's attacks (positions in this record), by image id.

        Raises:
          PixeljaxError: an attack appears twice (a folder mixing runs).
        """
        ids, counts = np.unique(self.attack_id, return_counts=True)
        if (counts > 1).any():
            raise PixeljaxError(f"attack {int(ids[counts > 1][0])} appears twice in the "
                                f"results; the results folder mixes runs, statistics would "
                                f"count it twice")
        groups: dict[int, list[int]] = {}
        for k, i in enumerate(self.image_index):
            groups.setdefault(int(i), []).append(k)
        return {i: np.asarray(g, np.int64) for i, g in groups.items()}

    def image_outcomes(self) -> dict[int, bool]:
        """Per attacked (not skipped) image id: whether any of its attacks succeeded (the
        paper's non-targeted success under the all-targets protocol)."""
        return {i: bool(self.success[g].any()) for i, g in self.per_image().items()
                if not self.skipped[g[0]]}

    def classes_reached(self) -> dict[int, int]:
        """Per attacked image id: how many of its attacks succeeded (all-targets runs: the
        classes it was pushed to)."""
        return {i: int(self.success[g].sum()) for i, g in self.per_image().items()
                if not self.skipped[g[0]]}

    @classmethod
    def concat(cls, parts: Sequence[AttackResult], *, pixels: int, channels: int,
               delta_shape: tuple[int, ...] | None = None) -> AttackResult:
        """The parts one after the other (an empty record of this shape when there are none;
        ``delta_shape``: (H, W, C), of a threshold attack)."""
        parts = [p for p in parts if len(p)] or [cls.empty(pixels, channels, delta_shape)]
        joined = {name: np.concatenate([getattr(p, name) for p in parts])
                  if all(getattr(p, name) is not None for p in parts) else None
                  for name in ("adversarial", "delta")}
        if joined["delta"] is None and any(p.threshold for p in parts):
            raise PixeljaxError("results of a threshold attack and of a pixel attack cannot "
                                "be joined")
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts])
                      for name in _DTYPES}, **joined)

    @classmethod
    def empty(cls, pixels: int, channels: int,
              delta_shape: tuple[int, ...] | None = None) -> AttackResult:
        """No attacks: of a pixel attack, or with ``delta_shape`` (H, W, C) of a threshold
        attack (``pixels`` then 0)."""
        pixels = 0 if delta_shape is not None else pixels
        return cls(**{name: np.zeros((0, pixels, 2 + channels) if name == "perturbation"
                                     else 0, dtype) for name, dtype in _DTYPES.items()},
                   delta=None if delta_shape is None else np.zeros((0, *delta_shape)))

    def to_rows(self) -> list[dict]:
        """One ``results.csv`` row per attack (see :mod:`pixeljax.runs.results`)."""
        fields = results.pixel_fields(self.channels)
        out = []
        for k in range(len(self)):
            row = {_COLUMN.get(name, name): getattr(self, name)[k].item()
                   for name in _DTYPES if name != "perturbation"}
            row["success"] = int(self.success[k])
            if self.threshold:
                row[results.DELTA] = results.encode_delta(self.delta[k])
            for j in range(self.pixels):
                for n, name in enumerate(fields):
                    row[f"{name}{j}"] = float(self.perturbation[k, j, n])
            out.append(row)
        return out

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping], *, pixels: int,
                  channels: int) -> AttackResult:
        """The record of ``results.csv`` rows (as :func:`pixeljax.runs.results.read_rows` parses
        them); rows with a ``delta`` column are a threshold attack's (``pixels`` unused)."""
        if not rows:
            return cls.empty(pixels, channels)
        if results.DELTA in rows[0]:
            delta = np.stack([results.decode_delta(r[results.DELTA]) for r in rows])
            return cls(**{name: [r[_COLUMN.get(name, name)] for r in rows]
                          for name in _DTYPES if name != "perturbation"},
                       perturbation=np.zeros((len(rows), 0, 2 + delta.shape[-1])), delta=delta)
        try:
            perturbation = np.stack([results.perturbation(r, pixels, channels) for r in rows])
            columns = {name: [r[_COLUMN.get(name, name)] for r in rows]
                       for name in _DTYPES if name != "perturbation"}
        except KeyError as e:
            raise PixeljaxError(f"results rows have no column {e.args[0]} for {pixels}-pixel "
                                f"attacks on {channels}-channel images") from None
        return cls(perturbation=perturbation.reshape(len(rows), pixels, 2 + channels),
                   **columns)

    @classmethod
    def from_folder(cls, directory: str | Path, *, repair: bool = False) -> AttackResult:
        """Every attack of a results folder (``results.csv`` and any process shards; see
        :func:`pixeljax.runs.results.read_rows`), in file order."""
        pixels = int(results.read_config(directory).get("pixels") or 1)
        rows = results.read_rows(directory, repair=repair)
        try:
            return cls.from_rows(rows, pixels=pixels, channels=channels_of(rows, pixels))
        except PixeljaxError as e:
            raise PixeljaxError(f"{directory}: {e}") from None


def channels_of(rows: Sequence[Mapping], pixels: int) -> int:
    """The image channels results rows of ``pixels``-pixel attacks were written for (3 when
    there are none)."""
    if not rows:
        return 3
    if results.DELTA in rows[0]:
        return results.delta_shape(rows[0][results.DELTA])[-1]
    channels = len(set(rows[0]) - set(results.BASE_COLUMNS)) // pixels - 2
    if channels < 1:
        raise PixeljaxError(f"results rows have too few pixel columns for {pixels}-pixel "
                            f"attacks")
    return channels


__all__ = ["AttackResult", "Status", "channels_of"]
