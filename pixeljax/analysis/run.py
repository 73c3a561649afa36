"""The analyses of a results folder, end to end: load, compute, write tables and figures.

``pixeljax propagation`` and ``pixeljax locality`` call these two functions; they reproduce the
analyses of Vargas & Su, "Understanding the One-Pixel Attack: Propagation Maps and Locality
Analysis", arXiv 1902.02947, on the attacks found by ``pixeljax attack``.

Files written to ``OUT``:
  * ``propagation/attack_<id>.png`` (id zero-padded to 6 digits): every layer's PM_avg and
    PM_max of one attack;
  * ``propagation_average.png``: the maps averaged over all successful attacks, each aligned on
    its attacked pixel;
  * ``propagation_layers.csv``: per layer, mean and max relative difference and the fraction of
    positions that changed, averaged over all analysed attacks and over the successful ones;
  * ``propagation_attacks.csv``: the same numbers for every attack and layer;
  * ``locality.csv`` and ``locality.png``: success rate against distance, per model.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from pixeljax.analysis.attacks import AttackSet, load_attacks
from pixeljax.analysis.locality import check_radius, locality
from pixeljax.analysis.propagation import (
    PropagationMaps,
    attacked_pixels,
    average_maps,
    batch_propagation_maps,
)
from pixeljax.errors import PixeljaxError
from pixeljax.reporting.figures import draw_locality, draw_maps

PROPAGATION_FIGURES = "propagation"
PROPAGATION_AVERAGE = "propagation_average.png"
PROPAGATION_LAYERS = "propagation_layers.csv"
PROPAGATION_ATTACKS = "propagation_attacks.csv"
LOCALITY_TABLE = "locality.csv"
LOCALITY_FIGURE = "locality.png"

LAYER_COLUMNS = ("group", "layer_index", "layer", "height", "width", "attacks",
                 "mean_rel_diff", "max_rel_diff", "changed_fraction", "peak_rel_diff")
ATTACK_COLUMNS = ("attack_id", "success", "layer_index", "layer", "height", "width",
                  "mean_rel_diff", "max_rel_diff", "changed_fraction")
LOCALITY_COLUMNS = ("model", "results", "distance", "positions", "attacks", "evaluated",
                    "succeeded", "success_rate")


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (repr(float(v)) if isinstance(v, (float, np.floating)) else v)
                             for k, v in row.items()})
    return path


def layer_table(maps: PropagationMaps, group: str) -> list[dict]:
    """Per layer: the attack-averaged statistics of a batch of maps (see
    :meth:`PropagationMaps.statistics`) and the largest relative difference of any attack."""
    rows = []
    for i, stats in enumerate(maps.statistics()):
        rows.append({"group": group, "layer_index": i, "layer": stats["layer"],
                     "height": stats["height"], "width": stats["width"], "attacks": len(maps),
                     "mean_rel_diff": float(stats["mean_rel_diff"].mean()),
                     "max_rel_diff": float(stats["max_rel_diff"].mean()),
                     "changed_fraction": float(stats["changed_fraction"].mean()),
                     "peak_rel_diff": float(stats["max_rel_diff"].max())})
    return rows


def _attack_table(attacks: AttackSet, maps: PropagationMaps) -> list[dict]:
    rows = []
    stats = maps.statistics()
    for a, attack_id in enumerate(attacks.found.attack_id):
        for i, s in enumerate(stats):
            rows.append({"attack_id": int(attack_id), "success": int(attacks.found.success[a]),
                         "layer_index": i, "layer": s["layer"], "height": s["height"],
                         "width": s["width"], "mean_rel_diff": float(s["mean_rel_diff"][a]),
                         "max_rel_diff": float(s["max_rel_diff"][a]),
                         "changed_fraction": float(s["changed_fraction"][a])})
    return rows


def _class_name(attacks: AttackSet, c: int) -> str:
    return attacks.class_names[c] if 0 <= c < len(attacks.class_names) else str(c)


def run_propagation(results: str | Path, out: str | Path, *, limit: int | None = None,
                    model: str | None = None, batch_size: int = 32) -> dict:
    """Propagation maps of the attacks in a results folder: figures and per-layer tables.

    Args:
      results: a results folder of ``pixeljax attack``.
      out: where the figures and tables go (see the module docstring).
      limit: analyse only the first ``limit`` finished attacks.
      model: when given, the model the results must be of.
      batch_size: attacks per compiled evaluation.

    Returns:
      A summary: model, numbers of attacks and successes, and the files written.

    Raises:
      PixeljaxError: see :func:`~pixeljax.analysis.attacks.load_attacks`; or no finished attack.
    """
    out = Path(out)
    attacks = load_attacks(results, model=model, limit=limit, pixels_for="propagation maps")
    if len(attacks) == 0:
        raise PixeljaxError(f"{results} holds no finished attack to analyse")
    maps = batch_propagation_maps(attacks.victim, attacks.images, attacks.found.candidates,
                                  batch_size=batch_size)
    image_hw = attacks.images.shape[1:3]
    # (N, 2) (row, col)
    pixels = attacked_pixels(attacks.found.candidates, attacks.images.shape[1:])
    shapes = [m.shape[-2:] for m in maps.mean]
    files = []
    for a, attack_id in enumerate(attacks.found.attack_id):
        r, c = pixels[a]
        markers = [(r * h // image_hw[0], c * w // image_hw[1]) for h, w in shapes]
        outcome = "success" if attacks.found.success[a] else "failure"
        target = (f", target {_class_name(attacks, int(attacks.found.target[a]))}"
                  if attacks.found.target[a] >= 0 else "")
        title = (f"{attacks.model_name}, attack {attack_id}: "
                 f"{_class_name(attacks, int(attacks.found.label[a]))} -> "
                 f"{_class_name(attacks, int(attacks.found.adversarial_class[a]))}{target} "
                 f"({outcome}), pixel x={c} y={r}")
        files.append(draw_maps(maps.attack(a), out / PROPAGATION_FIGURES /
                               f"attack_{attack_id:06d}.png", title=title, markers=markers))
    table = layer_table(maps, "all")
    successful = maps.take(attacks.found.success)
    if len(successful):
        average = average_maps(successful, pixels[attacks.found.success], image_hw)
        centres = [(h - 1, w - 1) for h, w in shapes]
        files.append(draw_maps(average, out / PROPAGATION_AVERAGE, markers=centres,
                               title=f"{attacks.model_name}: mean over {len(successful)} "
                                     f"successful attacks, aligned on the attacked pixel"))
        table += layer_table(successful, "successful")
    files.append(_write_csv(out / PROPAGATION_LAYERS, LAYER_COLUMNS, table))
    files.append(_write_csv(out / PROPAGATION_ATTACKS, ATTACK_COLUMNS,
                            _attack_table(attacks, maps)))
    return {"model": attacks.model_name, "attacks": len(attacks),
            "successful": int(attacks.found.success.sum()), "layers": list(maps.names),
            "files": [str(f) for f in files]}


def _curve_labels(loaded: Sequence[AttackSet]) -> list[str]:
    """One label per folder: its model, and where two share a model, as much of each folder's
    path as tells them apart."""
    names = [a.model_name for a in loaded]
    labels = []
    for a in loaded:
        if names.count(a.model_name) == 1:
            labels.append(a.model_name)
            continue
        parts = a.directory.resolve().parts
        others = [b.directory.resolve().parts for b in loaded
                  if b is not a and b.model_name == a.model_name]
        depth = 1
        while depth < len(parts) and any(o[-depth:] == parts[-depth:] for o in others):
            depth += 1
        labels.append(f"{a.model_name} ({'/'.join(parts[-depth:])})")
    return labels


def run_locality(results: str | Path | Sequence[str | Path], out: str | Path, *,
                 radius: int = 2, model: str | None = None, batch_size: int = 512) -> dict:
    """Locality analysis of the successful attacks of one or more results folders.

    Distance is Chebyshev, ``max(|dx|, |dy|)``; see :mod:`pixeljax.analysis.locality`.

    Args:
      results: one results folder, or several (one curve each, e.g. one per model).
      out: where ``locality.csv`` and ``locality.png`` go.
      radius: largest distance, in ``[0, image size - 1]``.
      model: when given, the model every folder must hold results of.
      batch_size: shifted images per compiled evaluation.

    Returns:
      A summary: per folder its model and success rate by distance, and the files written.

    Raises:
      PixeljaxError: a bad radius, a folder without successful attacks, or see
        :func:`~pixeljax.analysis.attacks.load_attacks`.
    """
    folders = [results] if isinstance(results, (str, Path)) else list(results)
    if not folders:
        raise PixeljaxError("no results folder given")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise PixeljaxError(f"radius must be a whole number of pixels >= 0, got {radius!r}")
    loaded = []
    for folder in folders:
        attacks = load_attacks(folder, model=model, pixels_for="the locality analysis")
        check_radius(radius, attacks.images.shape[1:] if len(attacks) else (32, 32))
        attacks = attacks.successful()
        if len(attacks) == 0:
            raise PixeljaxError(f"{folder} holds no successful attack; locality needs some")
        loaded.append(attacks)
    labels = _curve_labels(loaded)
    curves, table, summary = {}, [], []
    for attacks, label in zip(loaded, labels):
        result = locality(attacks.victim.predict, attacks.images, attacks.found.candidates,
                          attacks.found.label, attacks.found.target, radius=radius,
                          batch_size=batch_size)
        rows = result.by_distance()
        curves[label] = rows
        table += [{"model": attacks.model_name, "results": str(attacks.directory), **row}
                  for row in rows]
        summary.append({"model": attacks.model_name, "label": label,
                        "results": str(attacks.directory),
                        "attacks": len(attacks),
                        "success_rate": [row["success_rate"] for row in rows]})
    out = Path(out)
    files = [_write_csv(out / LOCALITY_TABLE, LOCALITY_COLUMNS, table),
             draw_locality(curves, out / LOCALITY_FIGURE,
                           title=f"locality of successful attacks, radius {radius}")]
    return {"radius": radius, "models": summary, "files": [str(f) for f in files]}
