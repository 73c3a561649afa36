"""Everything a suite run needs, checked before any work starts.

:func:`make_plan` loads the data, finds each victim's checkpoint (or the recipe that will train
it), reads every cell folder already in the results folder and checks it against what this run
would write. Every problem found (an unknown model, a victim with neither checkpoint nor recipe,
data that cannot be read, a results folder of another suite or configuration, a corrupt results
file) is reported together in one :class:`PixeljaxError`, up front rather than after an hour of
work.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pixeljax._plumbing import locking
from pixeljax.attack import validation
from pixeljax.attack.selection import select_images
from pixeljax.attack.sizes import EngineSizes
from pixeljax.attack.spec import AttackSpec
from pixeljax.data import ImageSet, data_key, load_dataset
from pixeljax.errors import PixeljaxError
from pixeljax.evaluation.suite import SWEEP_FIELDS, VARIANT_SEPARATOR, Cell, Suite, Victim
from pixeljax.models import model_names, user
from pixeljax.runs import results
from pixeljax.runs.modes import TARGET_MODES, Mode
from pixeljax.runs.victim_record import VictimRecord
from pixeljax.training import TrainConfig, load_recipe
from pixeljax.victims import checkpoint_ref
from pixeljax.victims.checkpoint import load_victim, read_metadata, shipped_checkpoint
from pixeljax.victims.loaded import weights_sha256
from pixeljax.victims.onnx import is_onnx

RECORD = "suite.json"
SCRATCH = ".restore-"  # a run archive's files on their way into a results folder
TRAINED = "checkpoint"  # OUT/<victim>/checkpoint: a victim this suite trained
WORKDIR = "train"       # OUT/<victim>/train: its training run


@dataclasses.dataclass(frozen=True)
class VictimPlan:
    """Where a victim's weights come from.

    Attributes:
      victim: the suite's entry.
      architecture: registry name of the network.
      checkpoint: the checkpoint folder attacked (written by training when ``needs_training``).
      checkpoint_id: how reports describe it (e.g. "checkpoints/allconv (shipped)").
      reference: how the cells' ``config.json`` names it, loadably (see
        :mod:`pixeljax.victims.checkpoint_ref`).
      fingerprint: the checkpoint's export time, so results of a re-exported checkpoint are
        never mixed with older ones (None until trained).
      weights_sha256: the fingerprint of its weights (``loaded.weights_sha256``; None until
        trained), recorded by every cell and compared on every resume and restore.
      recipe: the training recipe, if any.
      needs_training: no checkpoint exists yet: train with ``recipe`` first.
      num_classes: classes of the checkpoint's network (None until trained).
      weights_sha256: the weights fingerprint a cell records, for a victim that is one file
        (an ONNX model: its sha256).
    """

    victim: Victim
    architecture: str
    checkpoint: Path
    checkpoint_id: str
    reference: str
    fingerprint: str | None
    recipe: TrainConfig | None
    needs_training: bool
    num_classes: int | None = None
    weights_sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class CellPlan:
    """A cell and how far it is.

    Attributes:
      cell: the (victim, pixels, mode).
      directory: its results folder.
      attacks: rows it has when finished.
      done: rows already written.
    """

    cell: Cell
    directory: Path
    attacks: int
    done: int

    @property
    def complete(self) -> bool:
        return self.done >= self.attacks


@dataclasses.dataclass(frozen=True)
class Plan:
    """A checked suite run. ``n_images``/``first`` select the images (seeded by
    the suite's seed); ``sizes`` are the engine sizes of every cell."""

    suite: Suite
    out: Path
    data_spec: str
    data: ImageSet
    train_spec: str | None
    train_set: ImageSet | None
    n_images: int
    first: bool
    victims: dict[str, VictimPlan]
    cells: list[CellPlan]
    skipped: tuple[VictimPlan, ...] = ()
    sizes: EngineSizes = EngineSizes()

    def cell_spec(self, cell: Cell) -> AttackSpec:
        """The attack of one cell."""
        return self.suite.spec(cell, n_images=self.suite.images_of(cell, self.n_images),
                               first=self.first, sizes=self.sizes)

    def cell_fingerprint(self, cell: Cell, n_images: int | None = None) -> str:
        """The data fingerprint (``results.data_fingerprint``) of the images the cell attacks
        (or would attack on ``n_images`` images), as its run records it in ``config.json``."""
        spec = self.cell_spec(cell)
        images, labels = validation.check_images(self.data.x, self.data.y)
        ids = validation.check_image_ids(self.data.index, len(images),
                                         len(self.data.class_names))
        chosen = select_images(spec.n_images if n_images is None else n_images, len(images),
                               seed=spec.seed, first=spec.first)
        return results.data_fingerprint(images[chosen], labels[chosen], ids[chosen])

    def grown(self, cell: Cell, config: dict, expected: dict) -> bool:
        """Whether a cell folder's ``config`` (as stored, with its data fingerprint) records
        the start of the cell planned now (``expected``): the same attack on fewer images of
        the same selection, so that the suite's cell grew. Samples of one seed are nested and
        each attack's random stream is its own (its image and target), so the rows there are
        those the larger cell writes."""
        def rest(c):
            return {k: v for k, v in _normalise(c).items()
                    if k not in ("n_images", results.DATA_FINGERPRINT)}

        old, new = config.get("n_images"), expected.get("n_images")
        if rest(config) != rest(expected) or not isinstance(old, int) or \
                isinstance(old, bool) or new is None or old >= new:
            return False
        return config.get(results.DATA_FINGERPRINT) == self.cell_fingerprint(cell, old)

    def settings(self) -> dict:
        """What decides the results of every cell (all but the pixels and the goal), recorded
        in ``suite.json``."""
        de = [c for c in self.suite.cell_list() if c.mode != Mode.SWEEP]
        config = self.cell_spec((de or self.suite.cell_list())[0]).to_config()
        shared = {k: v for k, v in config.items() if k not in ("pixels", "mode", "target_class")}
        if Mode.SWEEP in self.suite.modes:
            shared["levels"] = list(self.suite.levels)
        if self.suite.variants:
            shared["variants"] = {v.name: v.describe() for v in self.suite.variants}
        if self.suite.cells:  # recorded under the name "cell_images"
            shared.update(n_images=self.n_images, cell_images={
                c.key: self.suite.images_of(c, self.n_images) for c in self.suite.cell_list()})
        return {"data": data_key(self.data_spec), "split": self.suite.split, **shared}

    def cell_victim(self, cell: Cell, fingerprint: str | None,
                    weights: str | None) -> VictimRecord:
        """What a cell attacks, as its ``config.json`` records it (see
        ``pixeljax.runs.results.run_config``): its victim exported at ``fingerprint``, with the
        weights fingerprint ``weights``."""
        v = self.victims[cell.victim.name]
        return VictimRecord(suite=self.suite.name, model=cell.victim.name,
                            architecture=v.architecture, checkpoint=v.reference,
                            checkpoint_exported=fingerprint, data=data_key(self.data_spec),
                            split=self.suite.split, defence=cell.victim.defence,
                            weights_sha256=weights)

    def cell_config(self, cell: Cell, fingerprint: str | None, weights: str | None) -> dict:
        """The ``config.json`` of a cell's results folder."""
        return results.run_config(self.cell_spec(cell),
                                  self.cell_victim(cell, fingerprint, weights))

    def record(self) -> dict:
        """The contents of ``OUT/suite.json``."""
        victims = {name: {"architecture": v.architecture, **v.victim.describe(),
                          "checkpoint_label": v.checkpoint_id,
                          "checkpoint_path": str(v.checkpoint.resolve())}
                   for name, v in self.victims.items()}
        return {"suite": self.suite.name, "description": self.suite.description,
                "settings": self.settings(), "class_names": list(self.data.class_names),
                "victims": victims, "cells": [c.cell.key for c in self.cells]}

    @property
    def total(self) -> int:
        return sum(c.attacks for c in self.cells)

    @property
    def done(self) -> int:
        return sum(min(c.done, c.attacks) for c in self.cells)

    def describe(self) -> str:
        """A few lines: images, budget, victims and how much is left to do."""
        s = self.suite
        how = (f"the first {self.n_images}" if self.first and self.n_images < len(self.data)
               else "all" if self.first else f"a random sample (seed {s.attack.seed}) of "
               f"{self.n_images}")
        lines = [f"suite {s.name}: {len(self.cells)} cells, {how} of {len(self.data):,} "
                 f"images of {self.data.source}; population {s.attack.popsize}, "
                 f"{s.attack.maxiter} generations"]
        given = self.sizes.given()
        if given:
            lines.append("  engine sizes: " + ", ".join(
                k if v is True else f"{k} {v}" for k, v in given.items()))
        for v in self.skipped:
            lines.append(f"  {v.victim.name} ({v.architecture}): no checkpoint; skipped "
                         f"({_training_cost(v)}: pass --train-missing to train it first)")
        for name, v in self.victims.items():
            if v.needs_training:
                n = len(self.train_set) if self.train_set is not None else None
                where = f"to train first ({_training_cost(v, n)}, then {v.checkpoint})"
            else:
                where = f"checkpoint {v.checkpoint}"
            cells = [c for c in self.cells if c.cell.victim.name == name]
            left = sum(not c.complete for c in cells)
            behind = f" behind {v.victim.defence}" if v.victim.defence else ""
            lines.append(f"  {name} ({v.architecture}{behind}): {where}; {left} of "
                         f"{len(cells)} cells to run")
        lines.append(f"  attacks: {self.done:,} of {self.total:,} done")
        return "\n".join(lines)


def cell_settings(settings: dict, key: str, mode: str) -> dict:
    """The suite's ``settings`` that the cell ``key`` of ``mode`` records: all of them for a DE
    cell; the data, the selection and the levels for a sweep cell."""
    settings = dict(settings)
    sizes = settings.pop("cell_images", None)
    variants = settings.pop("variants", {})
    if sizes is not None:
        settings["n_images"] = sizes.get(key, settings["n_images"])
    settings.update(variants.get(key.partition(VARIANT_SEPARATOR)[2], {}))
    if mode == Mode.SWEEP:
        return {k: v for k, v in settings.items()
                if k in ("data", "split", "levels") + SWEEP_FIELDS}
    return {k: v for k, v in settings.items() if k != "levels"}


# Settings each cell's own config checks (a sweep cell's records the levels), so a suite may
# gain cells, images, variants or its first sweep cell.
PER_CELL = ("n_images", "cell_images", "variants", "levels")


def shared_settings(settings: dict) -> dict:
    """The settings every cell of a suite shares: a results folder or an archive of the suite
    with other ones is another run. Which cells there are, their images and their variants
    may grow (a suite gains cells or images); each cell's ``config.json`` is checked apart."""
    return {k: v for k, v in _normalise(settings).items() if k not in PER_CELL}


def _training_cost(v: VictimPlan, train_images: int | None = None) -> str:
    """How long training a victim takes, in the recipe's words: epochs and images."""
    r = v.recipe
    n = train_images
    if v.victim.train_images:
        n = v.victim.train_images if n is None else min(n, v.victim.train_images)
    epochs = f"{r.epochs} epoch{'s' if r.epochs != 1 else ''}"
    return f"{epochs} on {n:,} images" if n is not None else f"{epochs} with recipe {r.model}"


def _differences(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys)


def _normalise(d: dict) -> dict:
    return json.loads(json.dumps(d))


def _recipe(victim: Victim, problems: list[str]) -> TrainConfig | None:
    if victim.recipe is None or isinstance(victim.recipe, TrainConfig):
        return victim.recipe
    try:
        return load_recipe(victim.recipe)
    except PixeljaxError as e:
        problems.append(f"victim {victim.name}: {e}")
        return None


def _checkpoint_meta(directory: Path, architecture: str, who: str,
                     problems: list[str]) -> dict | None:
    try:
        meta = read_metadata(directory)
    except PixeljaxError as e:
        problems.append(f"victim {who}: {e}")
        return None
    if meta["architecture"] != architecture:
        problems.append(f"victim {who}: checkpoint {directory} holds a "
                        f"{meta['architecture']!r} network, not {architecture!r}")
        return None
    return meta


def _plan_user_victim(victim: Victim, architecture: str, problems: list[str],
                      image_shape=None) -> VictimPlan | None:
    """A victim built by a user's factory (``module.path:factory``) from its checkpoint, or an
    ONNX file (``path/model.onnx``, holding its weights)."""
    onnx = is_onnx(architecture)
    if onnx:
        if victim.checkpoint is not None:
            problems.append(f"victim {victim.name}: an ONNX file holds its own weights: no "
                            f"Victim(checkpoint=...)")
            return None
        directory = Path(architecture).expanduser().resolve()
        architecture = str(directory)  # cells load it from anywhere
    elif victim.checkpoint is None:
        problems.append(f"victim {victim.name}: a model of your own ({architecture}) needs "
                        f"Victim(checkpoint=...)")
        return None
    else:
        directory = Path(victim.checkpoint).expanduser().resolve()
    try:
        loaded = load_victim(architecture, None if onnx else directory)
    except PixeljaxError as e:
        problems.append(f"victim {victim.name}: {e}")
        return None
    classes = loaded.metadata.get("num_classes")
    if image_shape is not None:  # the size it declares, its input scale, a traced call
        try:
            classes = validation.check_victim_fits(loaded, image_shape, "the suite's data")
        except PixeljaxError as e:
            problems.append(f"victim {victim.name}: {e}")
            return None
    return VictimPlan(victim, architecture, directory, str(directory), str(directory),
                      loaded.metadata.get("exported"), None, False, classes,
                      loaded.weights_sha256)


def plan_victim(victim: Victim, out: Path, problems: list[str],
                image_shape=None) -> VictimPlan | None:
    """Finds a victim's checkpoint, or the recipe that will train it; None on a problem
    (``image_shape``: of the data, to count a user's model's classes)."""
    recipe = _recipe(victim, problems)
    if victim.recipe is not None and recipe is None:
        return None
    architecture = recipe.model if recipe is not None else (victim.architecture or victim.name)
    if user.is_reference(architecture) or is_onnx(architecture):  # the user's own model
        return _plan_user_victim(victim, architecture, problems, image_shape)
    if architecture not in model_names():
        problems.append(f"victim {victim.name}: unknown model {architecture!r}; expected one of "
                        f"{', '.join(model_names())} (a recipe file may register its own)")
        return None
    trained = out / victim.name / TRAINED
    shipped = shipped_checkpoint(architecture)
    own = f"../{TRAINED}"  # from a cell folder, OUT/<victim>/<cell>
    if victim.checkpoint is not None and victim.checkpoint.startswith(checkpoint_ref.SHIPPED):
        name = victim.checkpoint[len(checkpoint_ref.SHIPPED):]  # another shipped victim
        directory, ident = shipped_checkpoint(name), f"checkpoints/{name} (shipped)"
        reference = victim.checkpoint
    elif victim.checkpoint is not None:
        directory = Path(victim.checkpoint).expanduser().resolve()
        ident = reference = str(directory)
    elif (trained / "metadata.json").is_file():
        directory, ident = trained, f"{victim.name}/{TRAINED} (trained by this suite)"
        reference = own
    elif (shipped / "metadata.json").is_file():
        directory, ident = shipped, f"checkpoints/{architecture} (shipped)"
        reference = checkpoint_ref.shipped(architecture)
    elif recipe is not None:
        workdir = out / victim.name / WORKDIR
        _check_workdir(workdir, recipe, victim.name, problems)
        return VictimPlan(victim, architecture, trained,
                          f"{victim.name}/{TRAINED} (trained by this suite)", own, None, recipe,
                          True)
    else:
        problems.append(f"victim {victim.name}: no checkpoint (looked in {shipped} and "
                        f"{trained}) and no recipe to train one; give Victim(checkpoint=...) "
                        f"or Victim(recipe=...)")
        return None
    meta = _checkpoint_meta(directory, architecture, victim.name, problems)
    if meta is None:
        return None
    return VictimPlan(victim, architecture, directory, ident, reference, meta.get("exported"),
                      recipe, False, meta.get("num_classes", 10), weights_sha256(meta))


def _with_classes(test: ImageSet, k: int, problems: list[str]) -> ImageSet:
    """The data with exactly the victims' ``k`` class names (the data's own, cut or padded
    with ``class N``); labels must lie below ``k``."""
    if len(test) and int(test.y.max()) >= k:
        problems.append(f"the victims have {k} classes, but the data hold labels up to "
                        f"{int(test.y.max())}")
        return test
    names = tuple(test.class_names[:k]) + tuple(f"class {c}" for c in
                                                range(len(test.class_names), k))
    return dataclasses.replace(test, class_names=names)


def _check_workdir(workdir: Path, recipe: TrainConfig, name: str, problems: list[str]) -> None:
    path = workdir / "config.json"
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        problems.append(f"victim {name}: {path} is corrupt ({e}); move {workdir} away")
        return
    if previous != _normalise(recipe.to_dict()):
        problems.append(f"victim {name}: {workdir} holds a training run of another recipe "
                        f"({_differences(previous, _normalise(recipe.to_dict()))}); move it "
                        f"away to train anew")


def check_record(out: Path, suite: Suite, settings: dict, problems: list[str]) -> None:
    """Checks ``out`` is new, empty or a results folder of this suite with these settings."""
    if out.exists() and not out.is_dir():
        problems.append(f"--out {out} is a file, not a folder")
        return
    path = out / RECORD
    if not path.is_file():
        if out.is_dir() and any(p.name != locking.LOCK and not p.name.startswith(SCRATCH)
                                for p in out.iterdir()):
            problems.append(f"{out} is not empty and holds no {RECORD}: not a results folder "
                            f"of a suite; use a new --out")
        return
    try:
        previous = json.loads(path.read_text())
        name, old = previous["suite"], previous["settings"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        problems.append(f"{path} is corrupt ({type(e).__name__}: {e}); move the folder away")
        return
    if name != suite.name:
        problems.append(f"{out} holds results of suite {name!r}, not {suite.name!r}; use "
                        f"another --out")
    elif not isinstance(old, dict) or shared_settings(old) != shared_settings(settings):
        old = old if isinstance(old, dict) else {}
        problems.append(f"{out} holds results of suite {name!r} with other settings "
                        f"({_differences(shared_settings(old), shared_settings(settings))}); "
                        f"use another --out or the same options")


def plan_cell(cell: Cell, plan_so_far: Plan, victim: VictimPlan, attacks: int,
              problems: list[str]) -> CellPlan:
    """Reads a cell's folder (if any) and checks it against the configuration of this run."""
    directory = cell.directory(plan_so_far.out)
    done = 0
    try:
        rows = results.read_rows(directory)
        done = len({r["attack_id"] for r in rows})
    except PixeljaxError as e:
        problems.append(f"cell {cell.key}: {e}")
        return CellPlan(cell, directory, attacks, 0)
    if not (directory / results.CONFIG).is_file():
        if rows:
            problems.append(f"cell {cell.key}: {directory} has results but no "
                            f"{results.CONFIG}; move it away")
        return CellPlan(cell, directory, attacks, done)
    try:
        # the data are compared by attack_folder, through their fingerprint
        stored = results.without_fingerprint(results.read_config(directory))
    except PixeljaxError as e:
        problems.append(f"cell {cell.key}: {e}")
        return CellPlan(cell, directory, attacks, done)
    if victim.needs_training:
        if rows:
            problems.append(f"cell {cell.key}: {directory} holds results, but the checkpoint "
                            f"they were made with ({victim.checkpoint}) is gone; move the cell "
                            f"folder away or restore the checkpoint")
        return CellPlan(cell, directory, attacks, done)
    expected = _normalise(plan_so_far.cell_config(cell, victim.fingerprint,
                                                  victim.weights_sha256))
    if stored != expected and not plan_so_far.grown(cell, results.read_config(directory),
                                                    expected):
        problems.append(f"cell {cell.key}: {directory} holds results of another configuration "
                        f"({_differences(stored, expected)}); use another --out")
    return CellPlan(cell, directory, attacks, done)


def _load(spec: str, split: str, what: str, problems: list[str]) -> ImageSet | None:
    try:
        return load_dataset(spec, split)
    except PixeljaxError as e:
        problems.append(f"{what}: {e}")
        return None


def make_plan(suite: Suite, out: str | Path, *, data: str | None = None,
              train_data: str | None = None, train_missing: bool = False,
              sizes: EngineSizes | None = None) -> Plan:
    """Checks everything a run of ``suite`` into ``out`` needs.

    Args:
      suite: the suite.
      out: the results folder.
      data: the data spec attacked (default: the suite's).
      train_data: the data spec victims without a checkpoint train on (default: ``data``).
      train_missing: train victims that have no checkpoint yet with their recipe (hours on a
        CPU). Without it they are skipped and listed in the plan: long work is opt-in.
      sizes: engine sizes and scoring; those it sets replace the suite attack's (not
        recorded: results do not depend on them).

    Raises:
      PixeljaxError: listing every problem found.
    """
    out = Path(out)
    problems: list[str] = []
    spec = data if data is not None else suite.data
    test = None
    if spec is None:
        problems.append(f"suite {suite.name} names no data; pass --data SPEC")
    else:
        test = _load(spec, suite.split, f"--data {spec}", problems)
    sizes = suite.attack.sizes.replace(**(sizes or EngineSizes()).given())
    shape = test.x.shape[1:] if test is not None else (32, 32, 3)
    for pixels in suite.pixels:
        try:
            AttackSpec(pixels=pixels).check_image_shape(shape)
        except PixeljaxError as e:
            problems.append(f"suite {suite.name}: {e}")
    shape = test.x.shape[1:] if test is not None else None
    victims = {v.name: plan_victim(v, out, problems, image_shape=shape) for v in suite.victims}
    skipped = tuple(v for v in victims.values()
                    if v is not None and v.needs_training and not train_missing)
    victims = {k: v for k, v in victims.items() if v is not None and v not in skipped}
    if not victims and skipped and not problems:
        names = ", ".join(v.victim.name for v in skipped)
        problems.append(f"no victim to attack: {names} {'has' if len(skipped) == 1 else 'have'} "
                        f"no checkpoint; pass --train-missing to train "
                        f"{'it' if len(skipped) == 1 else 'them'} first")
    if test is None:
        raise PixeljaxError(_report(suite, problems))
    counts = {v.num_classes for v in victims.values() if v is not None and v.num_classes}
    if len(counts) > 1:
        problems.append(f"the victims have different numbers of classes ({sorted(counts)}); "
                        f"a suite compares networks of one task")
    elif counts:
        test = _with_classes(test, counts.pop(), problems)
    wanted = suite.sample if suite.sample is not None else suite.images
    n_images = len(test) if wanted is None else min(wanted, len(test))
    plan = Plan(suite=suite, out=out, data_spec=spec, data=test, train_spec=None,
                train_set=None, n_images=n_images, first=suite.sample is None,
                victims=victims, cells=[], skipped=skipped, sizes=sizes)
    check_record(out, suite, plan.settings(), problems)
    cells = []
    for cell in suite.cell_list():
        victim = plan.victims.get(cell.victim.name)
        if victim is None:
            continue
        k = test.num_classes
        n = suite.images_of(cell, n_images)
        attacks = n * (k - 1 if cell.mode in TARGET_MODES else 1)
        cells.append(plan_cell(cell, plan, victim, attacks, problems))
    training = [v for v in plan.victims.values() if v.needs_training
                and any(not c.complete for c in cells if c.cell.victim.name == v.victim.name)]
    train_spec, train_set = None, None
    if training:
        train_spec = train_data if train_data is not None else spec
        names = ", ".join(v.victim.name for v in training)
        if train_spec == "sample":
            problems.append(f"{names}: no checkpoint yet, so training comes first, but the "
                            f"shipped sample holds test images only; pass --train-data SPEC "
                            f"(e.g. a CIFAR-10 folder or tfds)")
        else:
            train_set = _load(train_spec, "train", f"{names}: no checkpoint yet, so training "
                              f"comes first, on --train-data {train_spec}", problems)
        for v in training if train_set is not None else ():
            n = min(len(train_set), v.victim.train_images or len(train_set))
            if n < v.recipe.batch_size:
                problems.append(f"victim {v.victim.name}: {n} training images, fewer than one "
                                f"batch of {v.recipe.batch_size}")
    if problems:
        raise PixeljaxError(_report(suite, problems))
    return dataclasses.replace(plan, cells=cells, train_spec=train_spec, train_set=train_set)


def _report(suite: Suite, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"suite {suite.name} cannot run: {problems[0]}"
    return (f"suite {suite.name} cannot run ({len(problems)} problems):\n"
            + "\n".join(f"  - {p}" for p in problems))
