"""Runs a suite: attacks every cell of the victims that have a checkpoint, resumably (victims
without one are skipped, or trained first with ``train_missing``).

Each cell is one ``pixeljax.attack.run.attack_folder`` run into ``OUT/<victim>/<pixels>px-<mode>``;
finished cells are skipped, a cell cut short resumes where it stopped (``attack_folder`` keeps
every finished attack), and ``OUT/suite.json`` records the suite and its settings so a folder of
another suite or configuration is refused instead of mixed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from pixeljax._plumbing import locking
from pixeljax._plumbing.files import write_atomic
from pixeljax.attack.run import attack_folder
from pixeljax.attack.sizes import EngineSizes
from pixeljax.evaluation.archive import restore
from pixeljax.evaluation.plan import RECORD, CellPlan, Plan, make_plan
from pixeljax.evaluation.suite import Suite
from pixeljax.evaluation.victims import train_victim
from pixeljax.runs import results
from pixeljax.sweep.folder import sweep_folder
from pixeljax.sweep.spec import SweepSpec
from pixeljax.victims.attacked import as_attacked
from pixeljax.victims.checkpoint import load_victim


def with_images(suite: Suite, *, images: int | None = None, sample: int | None = None) -> Suite:
    """The suite attacking the first ``images`` images, or a random ``sample`` of them."""
    if sample is not None:
        return dataclasses.replace(suite, images=None, sample=sample)
    if images is not None:
        return dataclasses.replace(suite, images=images, sample=None)
    return suite


def write_record(plan: Plan) -> None:
    """Writes ``OUT/suite.json`` (atomically)."""
    plan.out.mkdir(parents=True, exist_ok=True)
    path = plan.out / RECORD
    write_atomic(path, json.dumps(plan.record(), indent=2) + "\n")


def _reset_unstarted(cell: CellPlan, config: dict) -> None:
    """A cell folder with a ``config.json`` but no attack yet may be re-configured (e.g. after
    its victim was retrained): there is nothing to mix."""
    path = cell.directory / results.CONFIG
    if path.is_file() and not results.read_rows(cell.directory):
        stored = results.without_fingerprint(results.read_config(cell.directory))
        if stored != json.loads(json.dumps(config)):
            path.unlink()


def _grow(plan: Plan, cell: CellPlan, config: dict) -> None:
    """A cell folder that holds the start of a cell grown since (see :meth:`Plan.grown`) gets
    the grown cell's ``config.json``; its rows stay and the rest of the images are attacked."""
    path = cell.directory / results.CONFIG
    if path.is_file():
        stored = results.read_config(cell.directory)
        if plan.grown(cell.cell, stored, config):
            grown = {**config, results.DATA_FINGERPRINT: plan.cell_fingerprint(cell.cell)}
            write_atomic(path, json.dumps(grown, indent=2, sort_keys=True) + "\n")


def run_suite(suite: Suite, out: str | Path, *, data: str | None = None,
              train_data: str | None = None, train_missing: bool = False,
              images: int | None = None, sample: int | None = None,
              sizes: EngineSizes | None = None, progress: bool = True,
              continue_from: str | Path | None = None,
              log: Callable[[str], None] | None = None) -> list[dict]:
    """Runs every cell of ``suite`` into ``out``.

    Args:
      suite: the suite.
      out: the results folder (``OUT/suite.json`` and one folder per cell).
      data, train_data: data specs (see ``pixeljax.data.load_dataset``): the images attacked
        (default: the suite's) and those victims without a checkpoint train on (default:
        ``data``).
      train_missing: train victims without a checkpoint first (hours on a CPU); without it
        they are skipped with one line.
      images, sample: override the suite's image selection: the first N, or a random N.
      sizes: engine sizes and scoring (:class:`~pixeljax.attack.sizes.EngineSizes`); those
        it sets replace the suite attack's. Results do not depend on them.
      progress: show progress bars.
      continue_from: a publication (or its ``run.tar.gz``) whose cells ``out`` lacks are
        restored into it first (see ``pixeljax.evaluation.archive``), so the run continues
        from them.
      log: called with a line per step (plan, training, each cell).

    Returns:
      The summary of every cell, in suite order.

    Raises:
      PixeljaxError: anything that keeps the suite from running, found before any work.
    """
    say = log or (lambda line: None)
    suite = with_images(suite, images=images, sample=sample)
    planned = functools.partial(make_plan, suite, out, data=data, train_data=train_data,
                                train_missing=train_missing, sizes=sizes)
    plan = planned()
    if continue_from is not None:
        restored = restore(continue_from, plan)
        say(f"restored from {continue_from}: "
            f"{', '.join(restored) or 'no cell this folder lacks'}")
        plan = planned()
    say(plan.describe())
    for v in plan.skipped:
        say(f"skipping {v.victim.name}: no checkpoint (pass --train-missing to train it)")
    # One writer per suite folder (each cell folder and training work dir is locked too).
    with locking.exclusive(plan.out, "suite results folder"):
        write_record(plan)
        bar = tqdm(total=plan.total, initial=plan.done, disable=not progress, unit="attack",
                   desc=f"suite {suite.name}", position=0)
        try:
            for name, victim in plan.victims.items():
                todo = [c for c in plan.cells if c.cell.victim.name == name and not c.complete]
                if not todo or not victim.needs_training:
                    continue
                say(f"training {name} with its recipe ({victim.recipe.epochs} epochs)")
                meta = train_victim(victim, plan.train_set, plan.data, plan.out,
                                    suite=suite.name, progress=progress)
                say(f"trained {name}: test accuracy {meta['test_accuracy']:.4f} on "
                    f"{meta['test_images']} images; exported to {victim.checkpoint}")
            for cell in plan.cells:  # in the suite's order, each victim loaded when it changes
                if cell.complete:
                    continue
                victim = plan.victims[cell.cell.victim.name]
                loaded = as_attacked(load_victim(victim.architecture, victim.checkpoint),
                                     plan.data.x, defence=cell.cell.victim.defence)
                _run_cell(plan, cell, loaded, bar, say)
        finally:
            bar.close()
    return [results.read_summary(c.directory) for c in plan.cells]


def _run_cell(plan: Plan, cell: CellPlan, loaded, bar, say) -> None:
    """Runs one cell on the victim ``loaded`` as attacked now (its export time and weights
    fingerprint go into the cell's ``config.json``, so a checkpoint replaced since the plan
    is refused by the cell's own check)."""
    fingerprint, weights = loaded.metadata.get("exported"), loaded.weights_sha256
    index = [c.cell.key for c in plan.cells].index(cell.cell.key) + 1
    say(f"[{index}/{len(plan.cells)}] {cell.cell.key}: {cell.attacks - cell.done:,} of "
        f"{cell.attacks:,} attacks to run")
    config = plan.cell_config(cell.cell, fingerprint, weights)
    _reset_unstarted(cell, config)
    _grow(plan, cell, config)
    seen = 0

    def on_rows(rows):
        nonlocal seen
        seen += len(rows)
        bar.update(len(rows))

    bar.set_postfix_str(cell.cell.key)
    spec = plan.cell_spec(cell.cell)
    run = (functools.partial(sweep_folder, refuse_all_misclassified=False)
           if isinstance(spec, SweepSpec) else attack_folder)
    summary = run(loaded.predict, plan.data, cell.directory, spec,
                  victim=plan.cell_victim(cell.cell, fingerprint, weights), progress=False,
                  on_rows=on_rows)
    bar.update(max(0, cell.attacks - cell.done - seen))  # rows of skipped images
    say(f"  {cell.cell.key}: {summary['n_success']}/{summary['n_attacked']} images fooled "
        f"({summary['success_rate']:.1%}), {summary['n_skipped']} skipped (misclassified)")
