"""The resumable results-folder loop that every run kind (the DE attack, the sweep) shares:
one CSV row per (image, class), written as each batch finishes.

A killed run started again with the same configuration keeps every finished row, recomputes
nothing and appends only the missing ones. A run may use several devices (they share the slots)
and several processes (each takes its share of the plan and writes its own shard). A run kind
brings its :class:`Road`: how its pending rows run, what a batch cost, and what its summary adds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import jax
import numpy as np
from tqdm.auto import tqdm

from pixeljax.attack import pipeline, scoring
from pixeljax.attack.engine import Attack
from pixeljax.data import ImageSet
from pixeljax.errors import PixeljaxError
from pixeljax.models.precision import FLOAT32
from pixeljax.runs import results, stats
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.modes import TARGET_MODES
from pixeljax.runtime import distributed

SUMMARY_EVERY_SECONDS = 30  # a running summary.json, rewritten at most this often


class Road(Protocol):
    """How one run kind runs its pending rows into a results folder."""

    what: str  # names the run on the progress bar

    def stream(self, predict: Callable, prepared: pipeline.Planned,
               attacks: list[Attack]) -> Iterator[AttackResult]:
        """Runs ``attacks`` (the pending rows of clean images the victim classifies
        correctly); yields each batch of finished rows."""

    def cost(self, batch: AttackResult) -> int:
        """The model evaluations a batch took (the run's throughput)."""

    def finish(self, summary: dict, found: AttackResult) -> dict:
        """The summary completed with what this run kind adds."""


def fill_folder(predict: Callable, data: ImageSet, out: Path, prepared: pipeline.Planned,
                config: dict, road: Road, *, progress: bool,
                on_rows: Callable[[AttackResult], None] | None, process: int,
                num_processes: int) -> dict:
    """Runs the rows ``prepared`` plans that the folder (or this process's shard) lacks along
    ``road``, writing each batch as it finishes, and the summary; the caller holds the lock."""
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
    shape = prepared.result_layout()

    def summary_of(found: AttackResult) -> dict:
        wall, timed = results.run_time(out)  # every part of the run, every process
        summary = summarize(found, config, wall, num_classes=prepared.num_classes,
                            devices=local * num_processes, processes=num_processes,
                            timed_evaluations=timed)
        # The engine sizes that ran (resolved once, when the run was prepared).
        summary.update(slots=prepared.sizes.slots, batch_size=prepared.sizes.batch_size,
                       **scored)
        return road.finish(summary, found)

    with results.ResultsWriter(out, shape["pixels"], shape["channels"], process=process,
                               num_processes=num_processes,
                               threshold=shape["delta_shape"] is not None) as writer:
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
                       desc=f"{road.what} {config.get('model', '')}"
                            + (f" [{process}/{num_processes}]" if num_processes > 1 else ""))
            won, tried = int(done.success.sum()), int((~done.skipped).sum())
            last_summary = time.perf_counter()
            try:
                for batch in road.stream(predict, prepared, attacks):
                    writer.write(batch.to_rows())
                    clock.add(road.cost(batch))
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


def share(process: int | None, num_processes: int | None) -> tuple[int, int]:
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


__all__ = ["Road", "fill_folder", "share", "summarize"]
