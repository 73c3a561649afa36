"""The sweep's two sinks, as the attack's: ``pixel_sweep`` (in memory) and ``sweep_folder`` (a
resumable results folder).

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
from pixeljax.attack import pipeline, sweep
from pixeljax.attack.api import collect, with_settings
from pixeljax.attack.engine import NON_TARGETED
from pixeljax.attack.run import fill_folder
from pixeljax.attack.sweep import SweepSpec, SweptImage
from pixeljax.data import ImageSet
from pixeljax.errors import PixeljaxError
from pixeljax.runs import results
from pixeljax.runs.attack_result import AttackResult, Status, channels_of
from pixeljax.runs.victim_record import VictimRecord

NONTARGETED = "nontargeted.csv"
MAPS = "maps"


def _check_some_correct(predict, prepared: pipeline.Prepared, source: str) -> np.ndarray:
    """The clean probabilities of the selected images; at least one must be classified
    correctly (only those are swept)."""
    probs = pipeline.clean_probabilities(predict, prepared)
    if len(probs) and not np.any(probs.argmax(-1) == prepared.labels):
        raise PixeljaxError(f"the victim misclassifies every one of the {len(probs)} selected "
                            f"image(s) of {source}, so there is nothing to sweep; check that "
                            f"the data hold the images and labels the victim was trained for")
    return probs


def check_pixels(pixels) -> None:
    """The sweep changes one pixel."""
    if pixels != 1:
        raise PixeljaxError(f"the sweep changes one pixel, not {pixels}; for {pixels} pixels "
                            f"use the DE attack (pixel_attack, pixeljax attack --pixels "
                            f"{pixels})")


def _untargeted(prepared: pipeline.Prepared) -> pipeline.Prepared:
    """The prepared attacks as one non-targeted row per image (ids: image_id * K + label)."""
    p = prepared
    plan = [(i, -1) for i in range(len(p.images))]
    return dataclasses.replace(p, plan=plan, attack_ids=[
        pipeline.attack_id(p.image_ids[i], -1, p.labels[i], p.num_classes) for i, _ in plan])


def _found(prepared: pipeline.Prepared, entries: list[tuple[int, int, int]],
           wave: list[SweptImage], true_before: np.ndarray) -> AttackResult:
    """The results of a wave's re-checked candidates: ``entries`` are (attack id, swept image
    of ``wave``, class whose candidate it is); ``true_before`` (N,) each selected image's
    clean true-class probability. An attack's evaluations are its image's candidates."""
    p = prepared
    verdicts = [s.verdict(int(p.labels[s.position])) for s in wave]
    swept = [wave[w] for _, w, _ in entries]
    label = np.asarray([int(p.labels[s.position]) for s in swept], np.int64)
    after = np.stack([s.probs[t] for s, (*_, t) in zip(swept, entries)]) if entries \
        else np.zeros((0, p.num_classes), np.float32)
    n = len(entries)
    success = [bool(verdicts[w][t]) for _, w, t in entries]
    return AttackResult(
        attack_id=[a for a, *_ in entries],
        image_index=[p.image_ids[s.position] for s in swept], label=label,
        target=[t if t != y else NON_TARGETED for y, (*_, t) in zip(label, entries)],
        status=[Status.SUCCESS if ok else Status.FAILURE for ok in success],
        adversarial_class=after.argmax(-1), confidence=after.max(-1),
        true_prob_before=[true_before[s.position] for s in swept],
        true_prob_after=after[np.arange(n), label],
        perturbation=np.stack([s.candidates[t] for s, (*_, t) in zip(swept, entries)]).reshape(
            n, 1, -1) if n else np.zeros((0, 1, 2 + p.images.shape[-1])),
        generations=np.zeros(n), evaluations=[s.candidates_scored for s in swept],
        nonfinite=[s.nonfinite for s in swept], precision_flip=np.zeros(n))


def sweep_cost(batch: AttackResult) -> int:
    """What a batch of a sweep's results cost: each image's candidates, once."""
    _, first = np.unique(batch.image_index, return_index=True)
    return int(batch.evaluations[first].sum())


def _engine(spec: SweepSpec, on_wave: Callable[[pipeline.Prepared, list[SweptImage]], None]):
    """The sweep as a :func:`pixeljax.attack.run.fill_folder` engine: it sweeps each image that
    has pending attacks once and yields the (image, target) results among them; ``on_wave``
    gets every wave first."""
    def run(predict, prepared: pipeline.Prepared, attacks, key) -> object:
        del key  # a sweep draws nothing
        pending = {a.attack_id for a in attacks}
        k_of = {aid: k for k, aid in enumerate(prepared.attack_ids)}
        positions = sorted({prepared.plan[k_of[a]][0] for a in pending})
        true_before = np.zeros(len(prepared.images), np.float32)
        for a in attacks:  # the clean true-class probabilities the attacks carry
            true_before[prepared.plan[k_of[a.attack_id]][0]] = a.true_prob_before
        for wave in sweep.stream(prepared.scorer, predict, prepared.images[positions],
                                 prepared.labels[positions], spec, devices=prepared.devices):
            wave = [dataclasses.replace(s, position=positions[s.position]) for s in wave]
            on_wave(prepared, wave)
            entries = []
            for w, s in enumerate(wave):
                label = int(prepared.labels[s.position])
                for t in range(prepared.num_classes):
                    aid = pipeline.attack_id(prepared.image_ids[s.position], t, label,
                                             prepared.num_classes)
                    if t != label and aid in pending:
                        entries.append((aid, w, t))
            yield _found(prepared, entries, wave, true_before)

    return run


def _save_npz(path: Path, **arrays) -> None:
    """``np.savez_compressed`` through a temporary file, so a kill leaves no half file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def wave_arrays(prepared: pipeline.Prepared, wave: list[SweptImage]) -> dict:
    """A wave's per-image arrays, as ``maps/wave-*.npz`` stores them."""
    labels = [int(prepared.labels[s.position]) for s in wave]
    return {"image_index": np.asarray([prepared.image_ids[s.position] for s in wave], np.int64),
            "flips": np.stack([s.flips for s in wave]).astype(np.int32),
            "min_true": np.stack([s.min_true for s in wave]).astype(np.float32),
            "reached": np.stack([s.reached for s in wave]).astype(np.int64),
            "disagreements": np.asarray([s.disagreements(y) for s, y in zip(wave, labels)],
                                        np.int64),
            "nonfinite": np.asarray([s.nonfinite for s in wave], np.int64)}


def untargeted_results(prepared: pipeline.Prepared, wave: list[SweptImage],
                       probs: np.ndarray) -> AttackResult:
    """The non-targeted results of a wave: one per image, its best candidate against the true
    class (``probs``: the clean probabilities)."""
    p = _untargeted(prepared)
    entries = [(p.attack_ids[s.position], w, int(p.labels[s.position]))
               for w, s in enumerate(wave)]
    return _found(p, entries, wave, probs[np.arange(len(probs)), p.labels])


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


def _finish(out: Path, spec: SweepSpec, image_shape, sizes):
    """Completes a sweep folder's summary: candidates, not rows, are its evaluations, and the
    engine ``sizes`` are the sweep's own (images per wave, candidates per model call)."""
    def finish(summary: dict, found: AttackResult) -> dict:
        summary.update(slots=sizes.slots, batch_size=sizes.batch_size)
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

    return finish


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
    if not isinstance(spec, SweepSpec):
        raise PixeljaxError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    if jax.process_count() > 1:
        raise PixeljaxError("a sweep runs in one process (on all its devices); run it without "
                            "--coordinator / a multi-process launcher")
    config = results.run_config(spec, victim)
    if len(data) == 0:
        raise PixeljaxError(f"{data.source} holds no images to sweep")
    prepared = pipeline.prepare(predict, data.x, data.y, spec.selection(), image_ids=data.index,
                                devices=devices, source=data.source)
    sweep.check_size(spec, data.x.shape[1:])
    if refuse_all_misclassified:
        _check_some_correct(predict, prepared, data.source)
    sweep.announce(spec, data.x.shape[1:], len(prepared.images))
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
            def on_wave(p, wave):
                first = int(p.image_ids[wave[0].position])
                _save_npz(out / MAPS / f"wave-{first:012d}-{len(wave)}.npz",
                          **wave_arrays(p, wave))
                probs = pipeline.clean_probabilities(predict, p, [s.position for s in wave])
                untargeted.write(untargeted_results(p, wave, probs).to_rows())

            return fill_folder(predict, data, out, prepared, config, progress=progress,
                               on_rows=on_rows, process=0, num_processes=1,
                               engine=_engine(spec, on_wave), cost=sweep_cost,
                               finish=_finish(out, spec, shape, spec.resolved_sizes(
                                   shape, len(prepared.devices), len(prepared.images))),
                               what="sweep")


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What ``pixel_sweep`` found.

    Attributes:
      targets: one entry per (image, other class), as an all-targets
        :class:`~pixeljax.runs.attack_result.AttackResult` (``success``: a grid-colour pixel makes the
        network predict that class, re-checked densely; ``perturbation``: the best such pixel,
        else the one with the highest probability of that class).
      untargeted: one entry per image: the pixel with the lowest true-class probability (among
        fooling pixels where one exists).
      image: (M,) positions of the swept (correctly classified) images in the input.
      flips: (M, H, W) grid colours at each position that fool the network.
      min_true: (M, H, W) the lowest true-class probability at each position.
      reached: (M, K) candidates the network gives each class.
      disagreements: classes (over all images) where the dense re-check differs from the sweep.
      candidates_per_image: H * W * grid colours.
    """

    targets: AttackResult
    untargeted: AttackResult
    image: np.ndarray
    flips: np.ndarray
    min_true: np.ndarray
    reached: np.ndarray
    disagreements: int
    candidates_per_image: int


def pixel_sweep(predict: Callable, images, labels, spec: SweepSpec | None = None, *,
                image_ids=None, devices=None, **settings) -> SweepResult:
    """The exhaustive one-pixel sweep of correctly classified images: every position with
    every colour of the grid (default: the colour cube's corners), every class at once.

    Args:
      predict: ``predict(images) -> logits`` over NHWC images in [0, 255] (as for
        :func:`pixeljax.pixel_attack`; a victim's ``predict`` is scored incrementally).
      images, labels: (N, H, W, C) in [0, 255] and (N,) classes.
      spec: a :class:`~pixeljax.attack.sweep.SweepSpec` (default: corners, all images).
      image_ids: (N,) stable ids of the images (default: positions).
      devices: None (all of this process's), a count or devices; results do not depend on it.
      **settings: :class:`~pixeljax.attack.sweep.SweepSpec` fields.
    """
    check_pixels(settings.pop("pixels", 1))
    spec = with_settings(spec, settings, SweepSpec(), "sweep")
    prepared = pipeline.prepare(predict, images, labels, spec.selection(), image_ids=image_ids,
                                devices=devices)
    sweep.check_size(spec, prepared.images.shape[1:])
    probs = _check_some_correct(predict, prepared, "the images")
    attacks, skipped = pipeline.split_attacks(prepared, range(len(prepared.plan)), probs)
    waves: list[SweptImage] = []
    targets = collect(prepared, [pipeline.skipped_result(prepared, skipped, probs), *_engine(
        spec, lambda p, wave: waves.extend(wave))(predict, prepared, attacks, None)])
    nt = _untargeted(prepared)
    _, nt_skipped = pipeline.split_attacks(nt, range(len(nt.plan)), probs)
    untargeted = collect(nt, [pipeline.skipped_result(nt, nt_skipped, probs),
                              untargeted_results(prepared, waves, probs)])
    h, w = prepared.images.shape[1:3]
    stack = lambda name, shape, dtype: (  # noqa: E731
        np.stack([getattr(s, name) for s in waves]).astype(dtype) if waves
        else np.zeros((0, *shape), dtype))
    return SweepResult(
        targets=targets, untargeted=untargeted,
        image=prepared.positions[[s.position for s in waves]].astype(np.int64),
        flips=stack("flips", (h, w), np.int32), min_true=stack("min_true", (h, w), np.float32),
        reached=stack("reached", (prepared.num_classes,), np.int64),
        disagreements=sum(s.disagreements(int(prepared.labels[s.position])) for s in waves),
        candidates_per_image=spec.candidates(prepared.images.shape[1:]))


__all__ = ["MAPS", "NONTARGETED", "SweepResult", "pixel_sweep", "read_maps", "read_untargeted",
           "sweep_folder"]
