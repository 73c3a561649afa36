"""``sweep_folder``: a sweep into a resumable results folder (the loop is
:func:`pixeljax.attack.folder.fill_folder`, shared with the DE attack).

A sweep folder is an attack results folder (:mod:`pixeljax.runs.results`; ``mode`` "sweep") whose
``results.csv`` holds one row per (image, other class), as an all-targets DE run's does, so
``pixeljax report``, ``propagation`` and ``locality`` read it unchanged. Beside it:

    DIR/nontargeted.csv     per image: the candidate with the lowest true-class probability
                            (among fooling candidates where one exists), same columns
    DIR/maps/wave-*.npz     per image and position: grid colours that fool the model
                            (``flips``) and the lowest true-class probability (``min_true``),
                            candidates classified as each class (``reached``), and how many
                            classes the dense re-check saw otherwise (``disagreements``)

A wave's maps and non-targeted rows are written before its rows in ``results.csv``, so a killed
run that resumes sweeps only the images without rows, and whatever a wave wrote twice is read
once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

from pixeljax._plumbing import locking
from pixeljax._plumbing.files import atomic_path
from pixeljax.attack.folder import fill_folder
from pixeljax.data import ImageSet
from pixeljax.errors import PixeljaxError
from pixeljax.runs import results
from pixeljax.runs.attack_result import AttackResult, channels_of
from pixeljax.runs.victim_record import VictimRecord
from pixeljax.sweep import plan
from pixeljax.sweep.plan import SweepPlan
from pixeljax.sweep.rows import SweepRoad, untargeted_results
from pixeljax.sweep.spec import SweepSpec, announce
from pixeljax.sweep.waves import SweptImage

NONTARGETED = "nontargeted.csv"
MAPS = "maps"


def _save_npz(path: Path, **arrays) -> None:
    """``np.savez_compressed`` through a temporary file, so a kill leaves no half file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def wave_arrays(prepared: SweepPlan, wave: list[SweptImage]) -> dict:
    """A wave's per-image arrays, as ``maps/wave-*.npz`` stores them."""
    labels = [int(prepared.labels[s.position]) for s in wave]
    return {"image_index": np.asarray([prepared.image_ids[s.position] for s in wave], np.int64),
            "flips": np.stack([s.flips for s in wave]).astype(np.int32),
            "min_true": np.stack([s.min_true for s in wave]).astype(np.float32),
            "reached": np.stack([s.reached for s in wave]).astype(np.int64),
            "disagreements": np.asarray([s.disagreements(y) for s, y in zip(wave, labels)],
                                        np.int64),
            "nonfinite": np.asarray([s.nonfinite for s in wave], np.int64)}


def read_maps(directory: str | Path) -> dict[str, np.ndarray]:
    """Every image's maps in a sweep folder (see the module docstring), sorted by
    ``image_index``, each image once; empty arrays when there are none."""
    parts = []
    for path in sorted((Path(directory) / MAPS).glob("wave-*.npz")):
        try:
            with np.load(path) as f:
                parts.append({k: f[k] for k in f.files})
        except (OSError, ValueError) as e:
            raise PixeljaxError(f"{path} is damaged ({e}); its images' maps are lost: sweep "
                                f"into a new folder (their rows in results.csv are intact)") \
                from None
    if not parts:
        return {}
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    _, first = np.unique(merged["image_index"], return_index=True)
    return {k: v[first] for k, v in merged.items()}


def read_untargeted(directory: str | Path) -> AttackResult:
    """The non-targeted results of a sweep folder, one per image, sorted by attack id."""
    rows = {r["attack_id"]: r for r in reversed(results.read_file(Path(directory) / NONTARGETED))}
    rows = [rows[k] for k in sorted(rows)]
    return AttackResult.from_rows(rows, pixels=1, channels=channels_of(rows, 1))


def _check_beside_rows(out: Path) -> None:
    """Every swept image with rows in ``results.csv`` still has its maps and its non-targeted
    row (written before its rows): lost since, they cannot be rebuilt from the rows, and a
    summary without them would count zeros."""
    swept = set(AttackResult.from_folder(out).attacked().image_index.tolist())
    have = {f"{MAPS}/": set(read_maps(out).get("image_index", np.zeros(0)).tolist()),
            NONTARGETED: set(read_untargeted(out).image_index.tolist())}
    lost = {name: sorted(swept - images) for name, images in have.items() if swept - images}
    if lost:
        name, images = next(iter(lost.items()))
        raise PixeljaxError(f"{out}: {' and '.join(lost)} lack(s) swept images that results.csv "
                            f"holds ({len(images)} missing from {name}, e.g. image {images[0]}), "
                            f"deleted or damaged since; they cannot be rebuilt from the rows: "
                            f"restore them, or sweep into a new folder")


@dataclasses.dataclass(frozen=True)
class FolderRoad(SweepRoad):
    """The sweep's road into a results folder ``out``: its summary counts candidates, not
    rows, as its evaluations, and adds the maps' totals."""

    out: Path | None = None
    spec: SweepSpec | None = None
    image_shape: tuple[int, ...] = ()

    def finish(self, summary: dict, found: AttackResult) -> dict:
        out, spec, image_shape = self.out, self.spec, self.image_shape
        maps = read_maps(out)
        attacked = sorted(set(found.attacked().image_index.tolist()))
        done = {k: v[np.isin(maps["image_index"], attacked)] for k, v in maps.items()} \
            if maps else {k: np.zeros((0, *image_shape[:2])) for k in ("flips",)}
        swept = len(done["flips"])
        untargeted = read_untargeted(out)
        total = lambda name: int(done[name].sum()) if swept else 0  # noqa: E731
        summary.update(
            levels=list(spec.levels), candidates_per_image=spec.candidates(image_shape),
            evaluations=swept * spec.candidates(image_shape), images_swept=swept,
            nonfinite_evaluations=total("nonfinite"),
            nonfinite_attacks=int((done["nonfinite"] > 0).sum()) if swept else 0,
            recheck_disagreements=total("disagreements"),
            mean_vulnerable_pixels=(float((done["flips"] > 0).sum(axis=(1, 2)).mean())
                                    if swept else 0.0),
            mean_lowest_true_prob=(float(np.mean(untargeted.true_prob_after.tolist()))
                                   if len(untargeted) else 0.0))
        return summary


def sweep_folder(predict: Callable, data: ImageSet, out: str | Path, spec: SweepSpec, *,
                 victim: VictimRecord | Mapping, progress: bool = True,
                 on_rows: Callable[[AttackResult], None] | None = None,
                 devices: int | Sequence[jax.Device] | None = None,
                 refuse_all_misclassified: bool = True) -> dict:
    """Sweeps images of ``data`` as ``spec`` says into the results folder ``out`` (see the
    module docstring); ``victim`` as for :func:`pixeljax.attack.run.attack_folder`. A killed
    run resumes with the same call; another configuration or other data are refused, and so
    is a victim that misclassifies every selected image (unless ``refuse_all_misclassified``
    is off, as in a suite: then every row is a skipped one).

    Returns:
      The summary (also ``out/summary.json``): the all-targets statistics of the rows, and
      the candidates scored, their throughput, the dense re-check's disagreements and the
      mean number of vulnerable positions per image.
    """
    if jax.process_count() > 1:
        raise PixeljaxError("a sweep runs in one process (on all its devices); run it without "
                            "--coordinator / a multi-process launcher")
    if not isinstance(spec, SweepSpec):
        raise PixeljaxError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    config = results.run_config(spec, victim)
    if len(data) == 0:
        raise PixeljaxError(f"{data.source} holds no images to sweep")
    prepared = plan.prepare(predict, data.x, data.y, spec, image_ids=data.index,
                            devices=devices, source=data.source)
    if refuse_all_misclassified:
        plan.check_some_correct(predict, prepared, data.source)
    announce(spec, data.x.shape[1:], len(prepared.images))
    out = Path(out)
    results.check_results_folder(out)
    with locking.exclusive(out, "results folder"):
        # The folder is checked before any of its files is written.
        results.check_config(out, {**config, results.DATA_FINGERPRINT: results.data_fingerprint(
            prepared.images, prepared.labels, prepared.image_ids)})
        results.read_file(out / NONTARGETED, repair=True)  # a cut-off last line goes
        _check_beside_rows(out)
        (out / MAPS).mkdir(exist_ok=True)
        shape = data.x.shape[1:]
        with results.ResultsWriter(out, 1, shape[-1], name=NONTARGETED) as untargeted:
            def on_wave(p, wave, true_before):
                first = int(p.image_ids[wave[0].position])
                _save_npz(out / MAPS / f"wave-{first:012d}-{len(wave)}.npz",
                          **wave_arrays(p, wave))
                untargeted.write(untargeted_results(p, wave, true_before).to_rows())

            road = FolderRoad(on_wave, out=out, spec=spec, image_shape=shape)
            return fill_folder(predict, data, out, prepared, config, road, progress=progress,
                               on_rows=on_rows, process=0, num_processes=1)


__all__ = ["MAPS", "NONTARGETED", "read_maps", "read_untargeted", "sweep_folder"]
