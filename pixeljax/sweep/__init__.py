"""The exhaustive one-pixel sweep: every position x a colour grid, all classes at once.

Its own road beside the DE attack's: :mod:`~pixeljax.sweep.spec` (settings),
:mod:`~pixeljax.sweep.plan` (selection, sizes, scorer), :mod:`~pixeljax.sweep.waves` (device
code and the stream of waves), :mod:`~pixeljax.sweep.rows` (waves as result rows),
:mod:`~pixeljax.sweep.folder` (a resumable results folder) and :mod:`~pixeljax.sweep.api`
(in memory). It shares the attack's selection, mesh, scorer, re-check and results-folder loop.
"""

from pixeljax.sweep.api import SweepResult, pixel_sweep
from pixeljax.sweep.folder import read_maps, read_untargeted, sweep_folder
from pixeljax.sweep.spec import CORNERS, SweepSpec

__all__ = ["CORNERS", "SweepResult", "SweepSpec", "pixel_sweep", "read_maps",
           "read_untargeted", "sweep_folder"]
