"""Reading a suite's results folder back: ``suite.json`` and every cell's results.

    OUT/suite.json                          the suite, its settings and its cells
    OUT/<victim>/<pixels>px-<mode>/         one attack results folder per cell
        (config.json, results, summary.json: see ``pixeljax.runs.results``)
    OUT/<victim>/checkpoint, OUT/<victim>/train   a victim the suite trained

Results are read through ``pixeljax.runs.results`` only, never by opening their files here, so the
reader follows any change of how a results folder is laid out. A plain results folder (of
``pixeljax attack`` or ``sweep``) reads as a suite of one cell (:func:`load_folder_results`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pixeljax.errors import PixeljaxError
from pixeljax.evaluation.plan import RECORD, TRAINED, cell_settings
from pixeljax.evaluation.suite import VARIANT_SEPARATOR
from pixeljax.models import model_names
from pixeljax.runs import results
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.modes import TARGET_MODES, Mode
from pixeljax.runs.victim_record import VictimRecord
from pixeljax.victims import checkpoint_ref
from pixeljax.victims.checkpoint import read_metadata, shipped_checkpoint


def load_record(out: str | Path) -> dict:
    """The ``suite.json`` of a results folder.

    Raises:
      PixeljaxError: no ``suite.json`` (not a suite's results folder), or a corrupt one.
    """
    path = Path(out) / RECORD
    if not path.is_file():
        raise PixeljaxError(f"{out} is not the results folder of a suite (no {RECORD}); run "
                            f"'pixeljax evaluate SUITE --out {out}' first")
    try:
        record = json.loads(path.read_text())
        for key in ("suite", "settings", "cells", "victims", "class_names"):
            record[key]  # noqa: B018
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PixeljaxError(f"{path} is corrupt ({type(e).__name__}: {e})") from None
    kinds = {"suite": str, "settings": dict, "cells": list, "victims": dict, "class_names": list}
    for key, kind in kinds.items():
        if not isinstance(record[key], kind):
            raise PixeljaxError(f"{path} is corrupt: {key!r} must be a {kind.__name__}, got "
                                f"{record[key]!r}"[:300])
    names = record["class_names"]
    if len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise PixeljaxError(f"{path} is corrupt: 'class_names' must name at least 2 classes, "
                            f"got {names!r}"[:300])
    if not all(isinstance(c, str) for c in record["cells"]):
        raise PixeljaxError(f"{path} is corrupt: 'cells' must be cell names such as "
                            f"'allconv/1px-non-targeted'")
    return record


@dataclasses.dataclass(frozen=True)
class CellResults:
    """One cell as stored.

    Attributes:
      key: ``<victim>/<pixels>px-<mode>[+<variant>]``.
      model: the victim's name; architecture: its network.
      pixels, mode: the attack; variant: the suite's variant it runs (None: the suite's
        attack itself).
      directory: the cell's results folder.
      found: its results (empty when it has not run).
      summary: its ``summary.json`` (cost: wall time, evaluations, device), or None.
      attacks: results it has when finished.
    """

    key: str
    model: str
    architecture: str
    pixels: int
    mode: str
    directory: Path
    found: AttackResult
    summary: dict | None
    attacks: int
    variant: str | None = None

    @property
    def started(self) -> bool:
        return bool(len(self.found))

    @property
    def complete(self) -> bool:
        return len(self.found) >= self.attacks


@dataclasses.dataclass(frozen=True)
class SuiteResults:
    """A suite's results folder: its record and every cell's results."""

    out: Path
    record: dict
    cells: list[CellResults]

    @property
    def name(self) -> str:
        return self.record["suite"]

    @property
    def kind(self) -> str:
        """What the folder is: "suite", or "results folder" (one attack or sweep)."""
        return self.record.get("kind", "suite")

    @property
    def settings(self) -> dict:
        return self.record["settings"]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.record["class_names"])

    @property
    def models(self) -> list[str]:
        """Victim names in suite order."""
        return list(dict.fromkeys(c.model for c in self.cells))

    def cell(self, model: str, pixels: int, mode: str,
             variant: str | None = None) -> CellResults | None:
        for c in self.cells:
            if (c.model, c.pixels, c.mode, c.variant) == (model, pixels, mode, variant):
                return c
        return None

    def victim_metadata(self, model: str) -> dict | None:
        """The attacked checkpoint's metadata (accuracy, training time), if still readable."""
        entry = self.record["victims"].get(model, {})
        for directory in (self.out / model / TRAINED, entry.get("checkpoint_path")):
            if directory and (Path(directory) / "metadata.json").is_file():
                try:
                    return read_metadata(directory)
                except PixeljaxError:
                    return None
        return None


def parse_key(key: str) -> tuple[str, int, str, str | None]:
    """``<victim>/<pixels>px-<mode>[+<variant>]`` as (victim, pixels, mode, variant)."""
    try:
        model, rest = key.split("/")
        rest, _, variant = rest.partition(VARIANT_SEPARATOR)
        pixels, mode = rest.split("px-", 1)
        return model, int(pixels), mode, variant or None
    except ValueError:
        raise PixeljaxError(f"{RECORD}: malformed cell {key!r}") from None


def _growing(config: dict, expected: dict) -> bool:
    old, new = config.get("n_images"), expected.get("n_images")
    return isinstance(old, int) and isinstance(new, int) and old < new


def load_results(out: str | Path) -> SuiteResults:
    """Reads a suite's results folder (read-only: nothing is repaired or rewritten).

    Raises:
      PixeljaxError: not a suite's results folder, a cell of another suite or configuration,
        or a corrupt results file.
    """
    out = Path(out)
    record = load_record(out)
    settings = record["settings"]
    k = len(record["class_names"])
    cells = []
    for key in record["cells"]:
        model, pixels, mode, variant = parse_key(key)
        directory = out / key
        found, summary = AttackResult.empty(pixels, 3), None
        if (directory / results.CONFIG).is_file():
            config = results.read_config(directory)
            expected = cell_settings(settings, key, mode)
            mine = {name: config.get(name) for name in expected}
            if _growing(mine, expected):  # the start of a grown cell, not yet continued
                mine["n_images"] = expected["n_images"]
            if config.get("suite") != record["suite"] or mine != expected:
                raise PixeljaxError(f"{directory} holds results of another suite or "
                                    f"configuration than {out / RECORD} records; move it away")
            found = AttackResult.from_folder(directory)
            summary = results.read_summary(directory)
        architecture = record["victims"].get(model, {}).get("architecture", model)
        n = cell_settings(settings, key, mode)["n_images"]
        attacks = n * (k - 1 if mode in TARGET_MODES else 1)
        cells.append(CellResults(key=key, model=model, architecture=architecture, pixels=pixels,
                                 mode=mode, directory=directory, found=found, summary=summary,
                                 attacks=attacks, variant=variant))
    return SuiteResults(out=out, record=record, cells=cells)


def load_folder_results(directory: str | Path, *, data: str | None = None) -> SuiteResults:
    """A results folder of ``pixeljax attack`` or ``sweep`` as a suite of one cell: its
    ``config.json`` as the settings, the class names of its data (``data``: where those are, if
    not where the run recorded). Finished (with its ``summary.json``), its rows are all it
    planned; unfinished, the images it asked for (up to those the data hold), with a row per
    other class of the data under a goal of one row per class.

    Raises:
      PixeljaxError: no ``config.json`` of an attack, its data cannot be read, or a corrupt
        results file.
    """
    from pixeljax.data import load_dataset

    directory = Path(directory)
    results.check_results_folder(directory)
    config = results.read_config(directory)
    spec = data or config.get("data")
    try:
        images = load_dataset(spec, config.get("split", "test"))
    except PixeljaxError as e:
        raise PixeljaxError(f"{directory}: the report needs the class names of the data the run "
                            f"attacked, which cannot be read ({e}); pass them with --data SPEC"
                            ) from None
    # A threshold attack changes every pixel: its cell is the one-pixel grid's, variant th<N>.
    model, pixels, mode = config["model"], int(config["pixels"] or 1), config["mode"]
    variant = f"th{config['threshold']}" if config.get("threshold") is not None else None
    summary = results.read_summary(directory)
    found = AttackResult.from_folder(directory)
    n = min(config.get("n_images") or len(images), len(images))
    planned = len(found) if summary else n * (
        len(images.class_names) - 1 if mode in TARGET_MODES else 1)
    key = f"{model}/{pixels}px-{mode}" + (f"{VARIANT_SEPARATOR}{variant}" if variant else "")
    victim = {"architecture": config.get("architecture", model), "defence": config.get("defence"),
              "checkpoint_label": config.get("checkpoint"),
              "checkpoint_path": _checkpoint_path(config, directory)}
    fields = set(VictimRecord.__dataclass_fields__)
    record = {"suite": directory.resolve().name, "kind": "results folder",
              "description": f"The {'sweep' if mode == Mode.SWEEP else 'attack'} of `{model}` in "
                             f"this folder.",
              "settings": {k: v for k, v in config.items() if k not in fields or k in
                           ("data", "split")},
              "cells": [key], "victims": {model: victim},
              "class_names": list(images.class_names)}
    cell = CellResults(key=key, model=model, architecture=victim["architecture"], pixels=pixels,
                       mode=mode, directory=directory, found=found, summary=summary,
                       attacks=planned, variant=variant)
    return SuiteResults(out=directory, record=record, cells=[cell])


def _checkpoint_path(config: dict, directory: Path) -> str | None:
    """The checkpoint folder a results folder attacked, for its metadata; None if unknown."""
    try:
        path = checkpoint_ref.resolve(config, directory)
    except PixeljaxError:
        return None
    if path is None and config.get("architecture") in model_names():
        path = shipped_checkpoint(config["architecture"])
    return None if path is None else str(path)
