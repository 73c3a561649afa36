"""An attack run written to a results folder: resumable, one CSV row per attack.

A killed run started again with the same configuration keeps every finished attack, recomputes
nothing and appends only the missing ones. A run may use several devices (they share the slots)
and several processes (each takes its share of the attack plan and writes its own shard).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from pixeljax._plumbing import locking
from pixeljax.attack import pipeline, scoring
from pixeljax.attack.spec import AttackSpec
from pixeljax.data import ImageSet
from pixeljax.errors import PixeljaxError
from pixeljax.models.precision import FLOAT32
from pixeljax.runs import results, stats
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.modes import TARGET_MODES
from pixeljax.runs.victim_record import VictimRecord
from pixeljax.runtime import distributed

SUMMARY_EVERY_SECONDS = 30  # a running summary.json, rewritten at most this often


def attack_folder(predict: Callable, data: ImageSet, out: str | Path, spec: AttackSpec, *,
                  victim: VictimRecord | Mapping, progress: bool = True,
                  on_rows: Callable[[AttackResult], None] | None = None,
                  devices: int | Sequence[jax.Device] | None = None,
                  process: int | None = None, num_processes: int | None = None) -> dict:
    """Attacks images of ``data`` as ``spec`` says and writes ``out/results.csv`` and
    ``out/summary.json``.

    ``victim`` names what is attacked: a :class:`~pixeljax.runs.victim_record.VictimRecord` (or a
    mapping of its fields: ``model``, ``architecture``, ``checkpoint``, a loadable reference,
    see :mod:`pixeljax.victims.checkpoint_ref`, and optionally ``data``, ``split``, ...). With the
    spec's settings it is stored as ``config.json``
    (:func:`pixeljax.runs.results.run_config`); a folder holding another configuration is refused.

    ``devices`` (default: all of this process's) share the slots; results do not depend on
    them. In a run of several processes (``jax.distributed``: by default
    ``jax.process_index()`` of ``jax.process_count()``), process ``p`` of ``n`` takes the
    attacks ``k`` of the plan with ``k % n == p`` and writes them to its own shard
    ``out/results-<p>-of-<n>.csv``; the processes refuse to start unless their
    configurations agree, every process skips attacks that any shard already holds, and the
    summary covers all shards. ``process``/``num_processes`` set the share by hand (then no
    process waits for another).

    One process at a time writes a folder (or, in a multi-process run, a shard): a second is
    refused (``pixeljax._plumbing.locking``).

    Returns:
      The summary (also written to ``out/summary.json``).
    """
    process, num_processes = _share(process, num_processes)
    config = results.run_config(spec, victim)
    if len(data) == 0:
        raise PixeljaxError(f"{data.source} holds no images to attack")
    # Every check before the folder is touched.
    prepared = pipeline.prepare(predict, data.x, data.y, spec, image_ids=data.index,
                                devices=devices, source=data.source)
    results.check_results_folder(out)
    with locking.exclusive(out, "results folder",
                           name=locking.lock_name(process, num_processes)):
        return fill_folder(predict, data, Path(out), prepared, config, progress=progress,
                           on_rows=on_rows, process=process, num_processes=num_processes)


def fill_folder(predict: Callable, data: ImageSet, out: Path, prepared: pipeline.Prepared,
                config: dict, *, progress: bool,
                on_rows: Callable[[AttackResult], None] | None, process: int,
                num_processes: int, engine: Callable = pipeline.run,
                cost: Callable[[AttackResult], int] | None = None,
                finish: Callable[[dict, AttackResult], dict] | None = None,
                what: str = "attack") -> dict:
    """:func:`attack_folder` (and :func:`pixeljax.attack.sweep_run.sweep_folder`) with the
    folder (or shard) locked.

    ``engine(predict, prepared, attacks, key)`` yields batches of finished attacks (see
    :func:`pixeljax.attack.engine.stream`); ``cost(batch)`` is the model evaluations a batch
    took (for the run's throughput); ``finish(summary, found)`` completes the summary;
    ``what`` names the run on the progress bar."""
    spec = prepared.spec
    local = len(prepared.devices)
    ids = prepared.attack_ids
    config = {**config, results.DATA_FINGERPRINT: results.data_fingerprint(
        prepared.images, prepared.labels, prepared.image_ids)}
    distributed.check_same("configuration", _agreement(config, ids, num_processes))
    results.check_config(out, config)
    if num_processes == 1:
        done = AttackResult.from_folder(out, repair=True)
    else:  # repair only this process's shard: the others may be writing theirs
        results.read_file(out / results.shard_name(process, num_processes), repair=True)
        done = AttackResult.from_folder(out)
    done_ids = set(done.attack_id.tolist())
    mine = [k for k in range(len(ids)) if k % num_processes == process]
    pending = [k for k in mine if ids[k] not in done_ids]
    clock = results.RunClock(out, process, num_processes)
    report = process == 0  # one process writes the summary while the run goes on
    scored = scoring.scoring_summary(prepared.scorer, data.x.shape[1:])
    threshold = spec.threshold is not None
    shape = dict(pixels=spec.pixels, channels=data.x.shape[-1],
                 delta_shape=data.x.shape[1:] if threshold else None)

    def summary_of(found: AttackResult) -> dict:
        wall, timed = results.run_time(out)  # every part of the run, every process
        summary = summarize(found, config, wall, num_classes=prepared.num_classes,
                            devices=local * num_processes, processes=num_processes,
                            timed_evaluations=timed)
        # The engine sizes in effect (slots rounded to the devices, the capped micro-batch).
        summary.update(slots=prepared.engine.slots, batch_size=prepared.engine.batch_size,
                       **scored)
        return summary if finish is None else finish(summary, found)

    with results.ResultsWriter(out, spec.pixels, data.x.shape[-1], process=process,
                               num_processes=num_processes, threshold=threshold) as writer:
        if pending:
            probs = pipeline.clean_probabilities(
                predict, prepared, {prepared.plan[k][0] for k in pending})
            attacks, left_out = pipeline.split_attacks(prepared, pending, probs)
            skipped = pipeline.skipped_result(prepared, left_out, probs)
            writer.write(skipped.to_rows())
            parts = [done, skipped]
            total, initial = ((len(ids), len(done) + len(skipped)) if num_processes == 1 else
                              (len(mine), len(mine) - len(pending) + len(skipped)))
            bar = tqdm(total=total, initial=initial, disable=not progress, unit="attack",
                       desc=f"{what} {config.get('model', '')}"
                            + (f" [{process}/{num_processes}]" if num_processes > 1 else ""))
            won, tried = int(done.success.sum()), int((~done.skipped).sum())
            last_summary = time.perf_counter()
            try:
                for batch in engine(predict, prepared, attacks, jax.random.key(spec.seed)):
                    writer.write(batch.to_rows())
                    clock.add((cost or model_evaluations)(batch))
                    parts.append(batch)
                    if on_rows is not None:
                        on_rows(batch)
                    won += int(batch.success.sum())
                    tried += len(batch)
                    if report and time.perf_counter() - last_summary > SUMMARY_EVERY_SECONDS:
                        results.write_summary(out, summary_of(AttackResult.concat(parts,
                                                                                  **shape)))
                        last_summary = time.perf_counter()
                    bar.update(len(batch))
                    bar.set_postfix(attack_success=f"{won / max(tried, 1):.1%}")
            finally:
                bar.close()
            done = AttackResult.concat(parts, **shape)
    if num_processes > 1:
        # The summary covers every shard: wait for the other processes (a dead one makes
        # JAX's coordination service stop the rest), then read them all.
        distributed.barrier("finished")
        done = AttackResult.from_folder(out)
    summary = summary_of(done)
    results.write_summary(out, summary)
    return summary


def model_evaluations(batch: AttackResult) -> int:
    """What a batch of DE attacks cost: their model evaluations."""
    return int(batch.evaluations.sum())


def _share(process: int | None, num_processes: int | None) -> tuple[int, int]:
    """This process's share of the attack plan: (process, number of processes)."""
    if num_processes is None:
        num_processes = jax.process_count()
    if process is None:
        process = jax.process_index() if num_processes == jax.process_count() else 0
    if num_processes < 1 or not 0 <= process < num_processes:
        raise PixeljaxError(f"process must lie in [0, num_processes - 1] with num_processes "
                            f">= 1, got process {process} of {num_processes}")
    return process, num_processes


def _agreement(config: dict, ids: list[int], num_processes: int) -> dict:
    """What every process of a run must share: the configuration and the attack plan (engine
    sizes and devices may differ: results do not depend on them)."""
    return {**config, "processes": num_processes,
            "plan": hashlib.sha256(np.asarray(ids, np.int64).tobytes()).hexdigest()[:16]}


def summarize(found: AttackResult, config: dict, wall_seconds: float, *, num_classes: int,
              devices: int | None = None, processes: int = 1,
              timed_evaluations: int | None = None) -> dict:
    """The run's totals, the paper's metrics from :func:`pixeljax.runs.stats.cell_statistics` (under
    all-targets an image succeeds if any of its targets does).

    ``devices`` (default: this process's) and ``processes`` are recorded as the run's scale.
    ``timed_evaluations``: the evaluations that ``wall_seconds`` covers, for the throughput
    (default: all of them)."""
    mode = config.get("mode")
    cell = stats.cell_statistics(found, mode=mode, num_classes=num_classes)
    evaluations = int(found.evaluations.sum())
    timed = evaluations if timed_evaluations is None else timed_evaluations
    summary = {
        "model": config.get("model"), "pixels": config.get("pixels"),
        **({"threshold": config["threshold"]} if config.get("threshold") is not None else {}),
        "mode": mode,
        "n_images": cell.images, "n_attacked": cell.attacked,
        "n_skipped": cell.images - cell.attacked, "n_success": cell.success.successes,
        "success_rate": cell.success.rate if cell.attacked else 0.0,
        "mean_confidence": cell.mean_confidence if cell.successful_attacks else 0.0,
        "evaluations": evaluations, "wall_seconds": round(wall_seconds, 3),
        "evaluations_per_second": timed / wall_seconds if wall_seconds > 0 else 0.0,
        # Evaluations whose logits were NaN or infinite: scored as the worst fitness.
        "nonfinite_evaluations": int(found.nonfinite.sum()),
        "nonfinite_attacks": int((found.nonfinite > 0).sum()),
        # Scoring precision; successes a bfloat16 score claimed or missed, reversed by the
        # float32 re-check.
        "precision": config.get("precision", FLOAT32),
        "precision_flips": int(found.precision_flip.sum()),
        "device": jax.devices()[0].device_kind,
        "devices": len(jax.local_devices()) if devices is None else devices,
        "processes": processes,
    }
    if mode in TARGET_MODES:
        summary.update(n_pairs=cell.attacks,
                       targeted_success_rate=cell.targeted.rate if cell.attacks else 0.0,
                       mean_classes_reached=(cell.mean_classes_reached if cell.attacked
                                             else 0.0))
    return summary


__all__ = ["attack_folder", "summarize"]
