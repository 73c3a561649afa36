"""A DE attack run written to a results folder: resumable, one CSV row per attack (the loop
is :func:`pixeljax.attack.folder.fill_folder`, shared with the sweep).

A killed run started again with the same configuration keeps every finished attack, recomputes
nothing and appends only the missing ones. A run may use several devices (they share the slots)
and several processes (each takes its share of the attack plan and writes its own shard).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import jax

from pixeljax._plumbing import locking
from pixeljax.attack import pipeline
from pixeljax.attack.engine import Attack
from pixeljax.attack.folder import fill_folder, share
from pixeljax.attack.spec import AttackSpec
from pixeljax.data import ImageSet
from pixeljax.errors import PixeljaxError
from pixeljax.runs import results
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.victim_record import VictimRecord


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
    process, num_processes = share(process, num_processes)
    config = results.run_config(spec, victim)
    if len(data) == 0:
        raise PixeljaxError(f"{data.source} holds no images to attack")
    # Every check before the folder is touched.
    prepared = pipeline.prepare(predict, data.x, data.y, spec, image_ids=data.index,
                                devices=devices, source=data.source)
    results.check_results_folder(out)
    with locking.exclusive(out, "results folder",
                           name=locking.lock_name(process, num_processes)):
        return fill_folder(predict, data, Path(out), prepared, config,
                           AttackRoad(jax.random.key(spec.seed)), progress=progress,
                           on_rows=on_rows, process=process, num_processes=num_processes)


@dataclasses.dataclass(frozen=True)
class AttackRoad:
    """The DE attack's :class:`~pixeljax.attack.folder.Road`: the engine, each attack's stream
    drawn from ``key``; a batch costs its model evaluations."""

    key: jax.Array
    what: str = "attack"

    def stream(self, predict: Callable, prepared: pipeline.Prepared,
               attacks: list[Attack]) -> Iterator[AttackResult]:
        return pipeline.run(predict, prepared, attacks, self.key)

    def cost(self, batch: AttackResult) -> int:
        return int(batch.evaluations.sum())

    def finish(self, summary: dict, found: AttackResult) -> dict:
        return summary


__all__ = ["AttackRoad", "attack_folder"]
