"""Evaluation suites: which victims to attack, with how many pixels, how, on which images.

A suite is a small Python file in ``evaluate/`` (or anywhere, given by path) that starts with the
command that runs it and defines ``SUITE = Suite(...)``, in the manner of big_vision's configs.
Its *cells* are every (victim, pixel count, mode) combination of its grid, or the cells it
lists (``cells=``); each cell is one ``pixeljax.attack.run.attack_folder`` run (a sweep cell's:
``pixeljax.sweep.folder.sweep_folder``) into ``OUT/<victim>/<pixels>px-<mode>/``.

Example (``evaluate/quick.py``)::

    \"\"\"The paper's grid on a handful of images.

        pixeljax evaluate quick --out runs/quick
    \"\"\"
    from pixeljax.evaluation import AttackSpec, Suite, Victim

    SUITE = Suite(name="quick", victims=(Victim("allconv", recipe="allconv"),),
                  pixels=(1, 3, 5), images=5, attack=AttackSpec(popsize=20, maxiter=10))
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from pixeljax._plumbing import settings
from pixeljax._plumbing.config_files import load_config, names_in
from pixeljax._shipped import shipped_folder
from pixeljax.attack.sizes import EngineSizes, SweepSizes
from pixeljax.attack.spec import DEFAULTS, AttackSpec
from pixeljax.errors import PixeljaxError
from pixeljax.runs.modes import Mode
from pixeljax.sweep.spec import CORNERS, SweepSpec
from pixeljax.training import TrainConfig
from pixeljax.victims.checkpoint_ref import SHIPPED
from pixeljax.victims.defences import defence_name, parse_defences

SUITES = shipped_folder("evaluate")
MODES = (Mode.NON_TARGETED.value, Mode.ALL_TARGETS.value)  # a suite's DE modes by default
ALL_MODES = MODES + (Mode.SWEEP.value,)  # and the exhaustive one-pixel sweep (one pixel only)
GRID_PIXELS = (1, 3, 5)  # a suite's pixel counts by default
_CELL_KEY = re.compile(r"^(?P<victim>[^/]+)/(?P<pixels>\d+)px-(?P<mode>[a-z-]+?)(?:\+(?P<variant>.+))?$")
SWEEP_FIELDS = ("n_images", "first", "seed")  # settings a sweep cell shares with DE cells
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class Victim:
    """A network a suite attacks.

    Its checkpoint is, in this order: ``checkpoint`` when given; the one an earlier run of the
    suite trained into ``OUT/<name>/checkpoint``; the shipped ``checkpoints/<architecture>``.
    When none exists, ``recipe`` trains it first (into ``OUT/<name>/train``).

    Attributes:
      name: the victim's folder name in the results; also its architecture when there is no
        recipe.
      recipe: a training recipe: a name in ``train/``, a path to a recipe ``.py`` file, or a
        :class:`TrainConfig`. Its ``model`` is the architecture (a recipe file may register
        its own).
      checkpoint: a checkpoint folder to attack (relative paths: from the current directory),
        or ``"shipped:NAME"``, the shipped victim ``checkpoints/NAME``.
      train_images: train on the first N training images only (None: all of them).
      eval_images: evaluate during training and at export on the first N test images only.
      architecture: the network when there is no recipe (default: ``name``): a registered
        name, or a model of the user's own, ``module.path:factory`` (with ``checkpoint``).
      defence: attack the network behind this input defence (``pixeljax.victims.defences``, e.g.
        ``"bits5+median3"``); give the victim a name of its own.
    """

    name: str
    recipe: str | TrainConfig | None = None
    checkpoint: str | None = None
    train_images: int | None = None
    eval_images: int | None = None
    architecture: str | None = None
    defence: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise PixeljaxError(f"victim name {self.name!r} must be a plain folder name "
                                f"(letters, digits, '_', '-', '.')")
        if self.defence is not None:
            try:
                object.__setattr__(self, "defence", defence_name(parse_defences(self.defence)))
            except PixeljaxError as e:
                raise PixeljaxError(f"victim {self.name}: {e}") from None
        if self.recipe is not None and not isinstance(self.recipe, (str, TrainConfig)):
            raise PixeljaxError(f"victim {self.name}: recipe must be a name, a path or a "
                                f"TrainConfig, got {type(self.recipe).__name__}")
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", str(self.checkpoint))
            shipped = self.checkpoint.startswith(SHIPPED) and self.checkpoint[len(SHIPPED):]
            if shipped is not False and not _NAME.match(shipped):
                raise PixeljaxError(f"victim {self.name}: checkpoint {self.checkpoint!r} must "
                                    f"name a shipped victim, {SHIPPED}NAME (a folder name in "
                                    f"checkpoints/)")
        for field in ("train_images", "eval_images"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise PixeljaxError(f"victim {self.name}: {field} must be a positive integer, "
                                    f"got {value!r}")

    def describe(self) -> dict:
        """A JSON-friendly description (for ``suite.json``)."""
        recipe = self.recipe.to_dict() if isinstance(self.recipe, TrainConfig) else self.recipe
        described = {"name": self.name, "recipe": recipe, "checkpoint": self.checkpoint,
                     "train_images": self.train_images, "eval_images": self.eval_images}
        if self.architecture is not None:
            described["architecture_given"] = self.architecture
        if self.defence is not None:
            described["defence"] = self.defence
        return described


VARIANT_SEPARATOR = "+"  # <victim>/<pixels>px-<mode>+<variant>
FIXED_BY_CELL = ("pixels", "goal", "target_class", "n_images", "first", "seed", "sizes")


@dataclasses.dataclass(frozen=True)
class Variant:
    """Cells that change some settings of the suite's attack, beside the cells that keep them
    (an ablation): the DE cells of the grid with ``attack`` applied to the suite's attack, and
    its sweep cells with ``levels`` (or a ``precision`` in ``attack``). Their keys end in
    ``+<name>``; a suite's ``cells`` may list them. A variant that sets ``threshold``
    (the threshold attack, which changes every pixel) has cells at one pixel only, e.g.
    ``Variant("th10", attack={"threshold": 10})``: ``<victim>/1px-<mode>+th10``.

    Attributes:
      name: the suffix of its cells' keys (a plain name).
      attack: settings of :class:`~pixeljax.attack.spec.AttackSpec` that differ (not the
        pixels, goal, selection, seed or sizes, which the grid and the suite set).
      levels: the sweep's colour values per channel, for its sweep cells.
    """

    name: str
    attack: dict = dataclasses.field(default_factory=dict)
    levels: tuple[int, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name) \
                or VARIANT_SEPARATOR in self.name:
            raise PixeljaxError(f"variant name {self.name!r} must be a plain name (letters, "
                                f"digits, '_', '-', '.')")
        if not isinstance(self.attack, dict):
            raise PixeljaxError(f"variant {self.name}: attack must be a dict of AttackSpec "
                                f"settings, got {type(self.attack).__name__}")
        fixed = sorted(set(self.attack) & set(FIXED_BY_CELL))
        if fixed:
            raise PixeljaxError(f"variant {self.name}: attack sets {', '.join(fixed)}, which "
                                f"the suite sets for every cell")
        try:
            DEFAULTS.replace(**self.attack)
            if self.levels is not None:
                object.__setattr__(self, "levels", SweepSpec(levels=self.levels).levels)
        except (PixeljaxError, TypeError) as e:
            raise PixeljaxError(f"variant {self.name}: {e}") from None
        if not self.attack and self.levels is None:
            raise PixeljaxError(f"variant {self.name}: changes nothing (give attack or levels)")

    @property
    def threshold(self) -> int | None:
        """The threshold attack's bound the variant sets (None: a pixel attack's variant)."""
        return self.attack.get("threshold")

    def applies_to(self, mode: str, pixels: int = 1) -> bool:
        """Whether the variant has cells of ``mode`` at ``pixels``: DE cells when it changes the
        attack (a threshold attack's at one pixel only), sweep cells when it changes the levels
        or only the precision."""
        if mode == Mode.SWEEP:
            return self.levels is not None or set(self.attack) == {"precision"}
        return bool(self.attack) and self.levels is None and (
            self.threshold is None or pixels == 1)

    def describe(self) -> dict:
        """A JSON-friendly description (``suite.json``)."""
        described = dict(self.attack)
        if self.levels is not None:
            described["levels"] = list(self.levels)
        return described


@dataclasses.dataclass(frozen=True)
class Cell:
    """One attack run of a suite: a victim, a pixel count, a mode and perhaps a variant."""

    victim: Victim
    pixels: int
    mode: str
    variant: Variant | None = None

    @property
    def key(self) -> str:
        """``<victim>/<pixels>px-<mode>[+<variant>]``, the cell's folder below the results
        folder."""
        suffix = f"{VARIANT_SEPARATOR}{self.variant.name}" if self.variant else ""
        return f"{self.victim.name}/{self.pixels}px-{self.mode}{suffix}"

    def directory(self, out: str | Path) -> Path:
        return Path(out) / self.key


@dataclasses.dataclass(frozen=True)
class Suite:
    """A grid of attack runs.

    Attributes:
      name: the suite's name (recorded in ``OUT/suite.json``; another suite's folder is refused).
      victims: the networks to attack.
      pixels: pixel counts.
      modes: "non-targeted" (each image once, the true class's probability minimised),
        "all-targets" (the paper's protocol: each image towards each other class) and/or
        "sweep" (every position x the colour grid ``levels``, all classes at once: one pixel
        only, so its cells exist at ``pixels`` 1 alone; see ``pixeljax.sweep``).
      images: attack the first N images of the split (None: all of them).
      sample: attack a seeded random sample of N images instead (the paper: 500 per network);
        the same images for every victim, so networks compare on equal footing.
      split: the data split attacked.
      data: the default ``--data`` spec (None: the command line must give one).
      attack: every cell's :class:`~pixeljax.attack.spec.AttackSpec` (default: the DE as the
        paper describes it): the DE budget and settings, the seed (also the sample's), the
        scoring precision and the engine sizes. Each cell is this spec with its pixels, goal
        and images; a sweep cell takes its seed, precision and sizes. Leave its pixels, goal
        and selection at their defaults: the grid and ``images``/``sample`` set them.
      levels: the sweep's colour values per channel (default: the colour cube's corners).
      variants: :class:`Variant` cells beside the grid's (ablations of the attack's settings).
      cells: ``((cell key, N), ...)`` (or a dict): the cells to run, listed directly instead
        of the whole grid, in this order, each on N of the selected images: the first N of
        them, or with ``sample`` the seeded sample of N, which lies inside every larger one of
        the same seed (so every cell of a victim attacks some of the same images). The keys
        (``<victim>/<pixels>px-<mode>[+<variant>]``) set ``pixels`` and ``modes``; leave those
        at their defaults.
      description: one line for the report.
    """

    name: str
    victims: tuple[Victim, ...]
    pixels: tuple[int, ...] = settings.counts(GRID_PIXELS, 1, "pixel counts")
    modes: tuple[str, ...] = settings.choices(MODES, ALL_MODES, "modes")
    images: int | None = settings.count(None, 1, "the first N images", optional=True)
    sample: int | None = settings.count(
        None, 1, "a seeded random sample of N images (the paper: 500)", optional=True)
    split: str = "test"
    data: str | None = None
    attack: AttackSpec = DEFAULTS
    levels: tuple[int, ...] = CORNERS
    variants: tuple[Variant, ...] = ()
    cells: tuple[tuple[str, int], ...] = ()
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "victims", tuple(self.victims))
        object.__setattr__(self, "variants", tuple(self.variants))
        if not all(isinstance(v, Variant) for v in self.variants) or \
                len({v.name for v in self.variants}) != len(self.variants):
            raise PixeljaxError(f"suite {self.name}: variants must be Variant entries with "
                                f"names of their own")
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise PixeljaxError(f"suite name {self.name!r} must be a plain name")
        if not self.victims or not all(isinstance(v, Victim) for v in self.victims):
            raise PixeljaxError(f"suite {self.name}: victims must be a non-empty tuple of Victim")
        names = [v.name for v in self.victims]
        if len(set(names)) != len(names):
            raise PixeljaxError(f"suite {self.name}: victim names must be unique, got {names}")
        self._cells_listed()
        settings.check_fields(self, f"suite {self.name}: ")
        # (listed cells are checked one by one against what the suite can make)
        if not self.cells and any(v.threshold is not None for v in self.variants) and \
                1 not in self.pixels:
            raise PixeljaxError(f"suite {self.name}: a threshold variant's cells sit at one "
                                f"pixel; add 1 to pixels (got {self.pixels})")
        if not self.cells and Mode.SWEEP in self.modes and 1 not in self.pixels:
            raise PixeljaxError(f"suite {self.name}: the sweep changes one pixel; add 1 to "
                                f"pixels (got {self.pixels})")
        try:
            object.__setattr__(self, "levels", SweepSpec(levels=self.levels).levels)
        except PixeljaxError as e:
            raise PixeljaxError(f"suite {self.name}: {e}") from None
        self._check_attack()
        self._check_cells()
        if self.images is not None and self.sample is not None:
            raise PixeljaxError(f"suite {self.name}: give images (the first N) or sample (a "
                                f"random N), not both")
        for cell in [c for c in self.cell_list() if c.victim == self.victims[0]]:
            try:
                self.spec(cell, n_images=None, first=True)
            except PixeljaxError as e:
                raise PixeljaxError(f"suite {self.name}: {e}") from None

    def _check_attack(self) -> None:
        if not isinstance(self.attack, AttackSpec):
            raise PixeljaxError(f"suite {self.name}: attack must be an AttackSpec, got "
                                f"{type(self.attack).__name__}")
        set_here = [k for k in ("pixels", "goal", "target_class", "n_images", "first")
                    if getattr(self.attack, k) != getattr(DEFAULTS, k)]
        if set_here:
            raise PixeljaxError(f"suite {self.name}: attack sets {', '.join(set_here)}; a suite "
                                f"sets them per cell (pixels, modes, images, sample, "
                                f"cells)")

    def spec(self, cell: Cell, *, n_images: int | None, first: bool,
             sizes: EngineSizes | None = None) -> AttackSpec | SweepSpec:
        """The attack of one cell: the suite's ``attack`` with the cell's pixels and goal, the
        selection ``n_images``/``first`` and the engine ``sizes`` (default: the attack's); a
        sweep cell's :class:`~pixeljax.sweep.spec.SweepSpec` takes the attack's seed and
        precision, and the sizes a sweep has (all but the DE's segment)."""
        sizes = self.attack.sizes if sizes is None else sizes
        variant = cell.variant
        attack = self.attack.replace(**variant.attack) if variant else self.attack
        if cell.mode == Mode.SWEEP:
            levels = variant.levels if variant and variant.levels else self.levels
            return SweepSpec(levels=levels, n_images=n_images, first=first, seed=attack.seed,
                             precision=attack.precision, sizes=SweepSizes.of(sizes))
        return attack.replace(pixels=cell.pixels, goal=cell.mode, n_images=n_images,
                              first=first, sizes=sizes)

    def _grid(self) -> list[Cell]:
        plain = [Cell(v, p, m) for v in self.victims for p in self.pixels for m in self.modes
                 if m != Mode.SWEEP or p == 1]
        return plain + [dataclasses.replace(c, variant=variant) for variant in self.variants
                        for c in plain if variant.applies_to(c.mode, c.pixels)]

    def _cells_listed(self) -> None:
        """With ``cells`` listed, the grid's pixels and modes are those of their keys."""
        items = self.cells.items() if isinstance(self.cells, dict) else self.cells
        try:
            items = tuple((str(k), n) for k, n in items)
        except (TypeError, ValueError):
            raise PixeljaxError(f"suite {self.name}: cells must be (cell key, images) pairs, "
                                f"got {self.cells!r}") from None
        object.__setattr__(self, "cells", items)
        if not items:
            return
        keys = [_CELL_KEY.match(k) for k, _ in items]
        unparsed = [k for (k, _), m in zip(items, keys) if m is None]
        if unparsed:
            raise PixeljaxError(f"suite {self.name}: cells names {unparsed}, which are not "
                                f"cell keys (<victim>/<pixels>px-<mode>[+<variant>], e.g. "
                                f"'{self.victims[0].name}/1px-non-targeted')")
        odd = [k for (k, _), m in zip(items, keys) if m["mode"] not in ALL_MODES]
        if odd:
            raise PixeljaxError(f"suite {self.name}: cells names {odd}, whose mode is not one "
                                f"of {ALL_MODES}")
        pixels = tuple(dict.fromkeys(int(m["pixels"]) for m in keys))
        modes = tuple(dict.fromkeys(m["mode"] for m in keys))
        # (a copy made by dataclasses.replace holds the listed cells' own)
        if (self.pixels, self.modes) not in ((GRID_PIXELS, MODES), (pixels, modes)):
            raise PixeljaxError(f"suite {self.name}: give the grid (pixels, modes) or the cells "
                                f"to run, not both: the cells' keys set the pixels and modes")
        object.__setattr__(self, "pixels", pixels)
        object.__setattr__(self, "modes", modes)

    def _check_cells(self) -> None:
        items = self.cells
        keys = [k for k, _ in items]
        grid = {c.key for c in self._grid()}
        unknown = [k for k in keys if k not in grid]
        if unknown:
            raise PixeljaxError(f"suite {self.name}: cells names cells the suite cannot make "
                                f"(a victim or variant it lacks): {unknown} (it can make: "
                                f"{sorted(grid)})")
        if len(set(keys)) != len(keys):
            raise PixeljaxError(f"suite {self.name}: cells names a cell twice: {keys}")
        bad = [n for _, n in items if not isinstance(n, int) or isinstance(n, bool) or n < 1]
        if bad:
            raise PixeljaxError(f"suite {self.name}: cells' image counts must be positive "
                                f"integers, got {bad}")

    def cell_list(self) -> list[Cell]:
        """The cells ``cells`` lists, in its order; else every (victim, pixels, mode), victim by
        victim (sweep cells at one pixel only), then the variants' cells."""
        if not self.cells:
            return self._grid()
        grid = {c.key: c for c in self._grid()}
        return [grid[k] for k, _ in self.cells]

    def images_of(self, cell: Cell, n_images: int | None) -> int | None:
        """The images a cell attacks, of the ``n_images`` selected."""
        wanted = dict(self.cells).get(cell.key)
        if wanted is None:
            return n_images
        return wanted if n_images is None else min(wanted, n_images)


def suite_names() -> list[str]:
    """Names of the suites in ``evaluate/`` (file ``paper_cifar10.py`` is ``paper-cifar10``)."""
    return [name.replace("_", "-") for name in names_in(SUITES)]


def load_suite(name_or_path: str | Path) -> Suite:
    """The suite ``evaluate/NAME.py`` (dashes in NAME stand for underscores), or the one in a
    ``.py`` file given by path.

    Raises:
      PixeljaxError: no such suite, or the file defines no ``SUITE = Suite(...)``.
    """
    return load_config(name_or_path, SUITES, "SUITE", Suite, what="suite",
                       names=suite_names())
