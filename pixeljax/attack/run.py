"""An attack run written to a results folder: resumable, one CSV row per attack.

A killed run started again with the same configuration keeps every finished attack, recomputes
nothing and appends only the missing ones. A run may use several devices (they share the slots)
and several processes (each takes its share of the attack plan and writes its own shard).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from pixeljax import distributed, locking, results
from pixeljax.attack import scoring, validation
from pixeljax.attack.api import ALL_TARGETS, attack_id, clean_logits, plan_attacks
from pixeljax.attack.engine import (
    NON_TARGETED,
    Attack,
    AttackParams,
    EngineConfig,
    local_devices,
    slot_count,
    stream,
)
from pixeljax.data import ImageSet
from pixeljax.de.core import DEParams
from pixeljax.errors import PixeljaxError

SUMMARY_EVERY_SECONDS = 30  # a running summary.json, rewritten at most this often


def select_images(n_images: int, total: int, *, seed: int, first: bool) -> np.ndarray:
    """Positions of the images to attack: the first N, or a seeded random sample of N."""
    n = min(n_images, total)
    if first:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(total, n, replace=False))


def _targets_for(mode: str, target_class: int | None, n: int):
    if mode == "non-targeted":
        return None
    if mode == "all-targets":
        return ALL_TARGETS
    return np.full(n, target_class, np.int32)


def attack_folder(apply: Callable, data: ImageSet, out: str | Path, run_config: dict, *,
                  engine: EngineConfig, params: AttackParams, seed: int, n_images: int,
                  first: bool = False, mode: str = "non-targeted",
                  target_class: int | None = None, progress: bool = True,
                  on_rows: Callable[[list[dict]], None] | None = None,
                  devices: int | Sequence[jax.Device] | None = None,
                  process: int | None = None, num_processes: int | None = None) -> dict:
    """Attacks images of ``data`` and writes ``out/results.csv`` and ``out/summary.json``.

    ``run_config`` describes the run (model, checkpoint, data, ...) and is stored as
    ``config.json``; a folder holding another configuration is refused.

    ``devices`` (default: all of this process's) share the slots; results do not depend on
    them. In a run of several processes (``jax.distributed``: by default
    ``jax.process_index()`` of ``jax.process_count()``), process ``p`` of ``n`` takes the
    attacks ``k`` of the plan with ``k % n == p`` and writes them to its own shard
    ``out/results-<p>-of-<n>.csv``; the processes refuse to start unless their
    configurations agree, every process skips attacks that any shard already holds, and the
    summary covers all shards. ``process``/``num_processes`` set the share by hand (then no
    process waits for another).

    One process at a time writes a folder (or, in a multi-process run, a shard): a second is
    refused (``pixeljax.locking``).

    Returns:
      The summary (also written to ``out/summary.json``).
    """
    process, num_processes = _share(process, num_processes)
    with locking.exclusive(out, "results folder",
                           name=locking.lock_name(process, num_processes)):
        return _attack_folder(apply, data, Path(out), run_config, engine=engine, params=params,
                              seed=seed, n_images=n_images, first=first, mode=mode,
                              target_class=target_class, progress=progress, on_rows=on_rows,
                              devices=devices, process=process, num_processes=num_processes)


def _attack_folder(apply: Callable, data: ImageSet, out: Path, run_config: dict, *,
                   engine: EngineConfig, params: AttackParams, seed: int, n_images: int,
                   first: bool, mode: str, target_class: int | None, progress: bool,
                   on_rows: Callable[[list[dict]], None] | None,
                   devices: int | Sequence[jax.Device] | None, process: int,
                   num_processes: int) -> dict:
    """:func:`attack_folder` with the folder (or shard) locked."""
    local = len(local_devices(devices))  # checks ``devices`` first
    n_devices = local * num_processes
    # A micro-batch larger than the slots can fill only pads each model call: cap it.
    engine = dataclasses.replace(engine, batch_size=validation.micro_batch(
        engine.batch_size, engine.slots, engine.popsize, local))
    positions = select_images(n_images, len(data), seed=seed, first=first)
    subset = data.take(positions)
    num_classes = validation.check_model(apply, subset.x)
    validation.check_labels(subset.y, num_classes)
    targets = _targets_for(mode, target_class, len(subset))
    plan = plan_attacks(subset.y, targets, num_classes)
    ids = [attack_id(subset.index[i], t, subset.y[i], num_classes) for i, t in plan]
    run_config = {**run_config, results.DATA_FINGERPRINT: results.data_fingerprint(
        subset.x, subset.y, subset.index)}
    distributed.check_same("configuration", _agreement(run_config, engine, params, seed,
                                                       n_images, first, mode, target_class,
                                                       ids, num_processes))
    results.check_config(out, run_config)
    if num_processes == 1:
        done_rows = results.read_rows(out, repair=True)
    else:  # repair only this process's shard: the others may be writing theirs
        results.read_file(out / results.shard_name(process, num_processes), repair=True)
        done_rows = results.read_rows(out)
    done_ids = {row["attack_id"] for row in done_rows}
    mine = [(a, i, t) for k, (a, (i, t)) in enumerate(zip(ids, plan))
            if k % num_processes == process]
    pending = [(a, i, t) for a, i, t in mine if a not in done_ids]
    clock = results.RunClock(out, process, num_processes)
    report = process == 0  # one process writes the summary while the run goes on
    scored = scoring.scoring_summary(apply, data.x.shape[1:], pixels=engine.pixels,
                                     dense=engine.dense)

    def summary_of(rows):
        wall, timed = results.run_time(out)  # every part of the run, every process
        summary = summarize(rows, run_config, mode, wall, devices=n_devices,
                            processes=num_processes, timed_evaluations=timed)
        # The engine sizes in effect (slots rounded to the devices, the capped micro-batch).
        summary.update(slots=slot_count(engine.slots, local), batch_size=engine.batch_size,
                       **scored)
        return summary

    with results.ResultsWriter(out, engine.pixels, data.x.shape[-1], process=process,
                               num_processes=num_processes) as writer:
        if pending:
            need = sorted({i for _, i, _ in pending})
            probs = np.zeros((len(subset), num_classes), np.float32)
            logits = clean_logits(apply, subset.x[need], engine.batch_size)
            probs[need] = np.asarray(jax.nn.softmax(logits, axis=-1))
            correct = probs.argmax(-1) == subset.y
            skipped = [_row(a, subset, i, t, probs, None, engine.pixels)
                       for a, i, t in pending if not correct[i]]
            writer.write(skipped)
            done_rows += skipped
            attacks = [Attack(a, subset.x[i], int(subset.y[i]), t)
                       for a, i, t in pending if correct[i]]
            where = {a: (i, t) for a, i, t in pending}
            total, initial = ((len(ids), len(done_rows)) if num_processes == 1 else
                              (len(mine), len(mine) - len(pending) + len(skipped)))
            bar = tqdm(total=total, initial=initial, disable=not progress, unit="attack",
                       desc=f"attack {run_config.get('model', '')}"
                            + (f" [{process}/{num_processes}]" if num_processes > 1 else ""))
            attacked = [r for r in done_rows if r["status"] != results.STATUS_SKIPPED]
            won, tried = sum(r["success"] for r in attacked), len(attacked)
            last_summary = time.perf_counter()
            try:
                for batch in stream(apply, attacks, jax.random.key(seed), engine, params,
                                    devices=devices):
                    rows = [_row(r["attack_id"], subset, *where[r["attack_id"]], probs, r,
                                 engine.pixels) for r in batch]
                    writer.write(rows)
                    clock.add(sum(r["evaluations"] for r in rows))
                    done_rows += rows
                    if on_rows is not None:
                        on_rows(rows)
                    won += sum(r["success"] for r in rows)
                    tried += len(rows)
                    if report and time.perf_counter() - last_summary > SUMMARY_EVERY_SECONDS:
                        results.write_summary(out, summary_of(done_rows))
                        last_summary = time.perf_counter()
                    bar.update(len(rows))
                    bar.set_postfix(attack_success=f"{won / max(tried, 1):.1%}")
            finally:
                bar.close()
    if num_processes > 1:
        # The summary covers every shard: wait for the other processes (a dead one makes
        # JAX's coordination service stop the rest), then read them all.
        distributed.barrier("finished")
        done_rows = results.read_rows(out)
    summary = summary_of(done_rows)
    results.write_summary(out, summary)
    return summary


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


def _agreement(run_config, engine, params, seed, n_images, first, mode, target_class, ids,
               num_processes) -> dict:
    """What every process of a run must share: the configuration and the attack plan (slots,
    batch size, segment and devices may differ: results do not depend on them)."""
    return {"run_config": run_config, "seed": seed, "n_images": n_images, "first": first,
            "mode": mode, "target_class": target_class, "processes": num_processes,
            "engine": {k: getattr(engine, k) for k in ("pixels", "popsize", "maxiter",
                                                       "strategy")},
            "params": {"F": float(params.de.F), "crossover_rate": float(params.de.crossover_rate),
                       "target_threshold": float(params.target_threshold),
                       "true_threshold": float(params.true_threshold)},
            "plan": hashlib.sha256(np.asarray(ids, np.int64).tobytes()).hexdigest()[:16]}


def _row(aid: int, subset: ImageSet, i: int, target: int, probs: np.ndarray,
         found: dict | None, pixels: int) -> dict:
    c = subset.x.shape[-1]
    label = int(subset.y[i])
    row = {"attack_id": aid, "image_index": int(subset.index[i]), "label": label,
           "target": int(target), "true_prob_before": float(probs[i, label])}
    if found is None:
        row.update(status=results.STATUS_SKIPPED, success=0,
                   adversarial_class=int(probs[i].argmax()), confidence=float(probs[i].max()),
                   true_prob_after=float(probs[i, label]), generations=0, evaluations=0,
                   nonfinite_evaluations=0)
        genes = np.zeros((pixels, 2 + c), np.float32)
    else:
        row.update(status=results.STATUS_SUCCESS if found["success"] else results.STATUS_FAILURE,
                   success=int(found["success"]),
                   adversarial_class=int(found["adversarial_class"]),
                   confidence=float(found["confidence"]),
                   true_prob_after=float(found["true_prob_after"]),
                   generations=int(found["generations"]), evaluations=int(found["evaluations"]),
                   nonfinite_evaluations=int(found.get("nonfinite", 0)))
        genes = np.asarray(found["perturbation"]).reshape(pixels, 2 + c)
    for k in range(pixels):
        for j, name in enumerate(results.pixel_fields(c)):
            row[f"{name}{k}"] = float(genes[k, j])
    return row


def summarize(rows: list[dict], run_config: dict, mode: str, wall_seconds: float, *,
              devices: int | None = None, processes: int = 1,
              timed_evaluations: int | None = None) -> dict:
    """The run's totals. Under all-targets, an image succeeds if any of its targets does.

    ``devices`` (default: this process's) and ``processes`` are recorded as the run's scale.
    ``timed_evaluations``: the evaluations that ``wall_seconds`` covers, for the throughput
    (default: all of them)."""
    by_image: dict[int, list[dict]] = {}
    for row in rows:
        by_image.setdefault(row["image_index"], []).append(row)
    attacked = {k: v for k, v in by_image.items() if v[0]["status"] != results.STATUS_SKIPPED}
    won = {k for k, v in attacked.items() if any(r["success"] for r in v)}
    confidences = [r["confidence"] for r in rows if r["success"]]
    evaluations = int(sum(r["evaluations"] for r in rows))
    timed = evaluations if timed_evaluations is None else timed_evaluations
    summary = {
        "model": run_config.get("model"), "pixels": run_config.get("pixels"), "mode": mode,
        "n_images": len(by_image), "n_attacked": len(attacked),
        "n_skipped": len(by_image) - len(attacked), "n_success": len(won),
        "success_rate": len(won) / len(attacked) if attacked else 0.0,
        "mean_confidence": float(np.mean(confidences)) if confidences else 0.0,
        "evaluations": evaluations, "wall_seconds": round(wall_seconds, 3),
        "evaluations_per_second": timed / wall_seconds if wall_seconds > 0 else 0.0,
        # Evaluations whose logits were NaN or infinite: scored as the worst fitness.
        "nonfinite_evaluations": int(sum(r.get("nonfinite_evaluations", 0) for r in rows)),
        "nonfinite_attacks": sum(r.get("nonfinite_evaluations", 0) > 0 for r in rows),
        "device": jax.devices()[0].device_kind,
        "devices": len(jax.local_devices()) if devices is None else devices,
        "processes": processes,
    }
    if mode == "all-targets":
        pairs = [r for v in attacked.values() for r in v]
        reached = [sum(r["success"] for r in v) for v in attacked.values()]
        summary.update(n_pairs=len(pairs),
                       targeted_success_rate=(sum(r["success"] for r in pairs) / len(pairs)
                                              if pairs else 0.0),
                       mean_classes_reached=float(np.mean(reached)) if reached else 0.0)
    return summary


def engine_settings(args) -> tuple[EngineConfig, AttackParams]:
    """Engine sizes and attack numbers from parsed command-line options."""
    engine = EngineConfig(pixels=args.pixels, popsize=args.popsize, maxiter=args.maxiter,
                          strategy=args.strategy, slots=args.slots, batch_size=args.batch_size,
                          segment=args.segment, dense=getattr(args, "dense", False))
    params = AttackParams(de=DEParams(F=args.F, crossover_rate=1.0 if args.crossover is None
                                      else args.crossover),
                          target_threshold=args.target_threshold,
                          true_threshold=-1.0 if args.true_threshold is None
                          else args.true_threshold)
    return engine, params


__all__ = ["NON_TARGETED", "attack_folder", "engine_settings", "select_images",
           "summarize"]
