"""Figures of the propagation-map and locality analyses (Vargas & Su, arXiv 1902.02947).

Drawn with matplotlib's object API onto Agg canvases, so no display, no pyplot state and no
global backend switch is involved; every function writes one PNG and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pixeljax.analysis.propagation import PropagationMaps
from pixeljax.figures import save_figure

MAX_COLUMNS = 6


def draw_maps(maps: PropagationMaps, path: str | Path, *, title: str = "",
              markers: Sequence[tuple[int, int]] | None = None) -> Path:
    """One panel pair per layer, in the model's order: PM_avg above PM_max.

    Each panel's colours run from 0 (black) to its own largest value (written in its title).

    Args:
      maps: the ``(h, w)`` maps of one attack, or an average (NaN cells are left blank).
      path: the PNG to write.
      title: the figure's title.
      markers: per layer, the ``(row, col)`` to mark (the attacked pixel), in that layer's
        coordinates.

    Returns:
      ``path``.
    """
    n = len(maps.names)
    cols = min(n, MAX_COLUMNS)
    blocks = math.ceil(n / cols)
    fig = Figure(figsize=(1.7 * cols, 3.6 * blocks + 0.5))
    axes = fig.subplots(2 * blocks, cols, squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.75 / fig.get_figheight(),
                        wspace=0.15, hspace=0.45)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (name, mean, peak) in enumerate(zip(maps.names, maps.mean, maps.max)):
        block, col = divmod(i, cols)
        for row, (kind, m) in enumerate((("avg", mean), ("max", peak))):
            ax = axes[2 * block + row, col]
            top = np.nanmax(m) if np.isfinite(m).any() else 0.0
            ax.imshow(m, cmap="magma", vmin=0.0, vmax=max(float(top), 1e-12),
                      interpolation="nearest")
            if markers is not None:
                ax.plot(markers[i][1], markers[i][0], marker="s", markersize=7,
                        markerfacecolor="none", markeredgecolor="cyan", markeredgewidth=0.8)
            ax.set_title(f"{name} PM_{kind}\nmax {top:.3g}", fontsize=7)
    fig.suptitle(title or "propagation maps (relative to the clean layer's maximum)",
                 fontsize=9)
    return save_figure(fig, path)


def draw_locality(curves: Mapping[str, Sequence[Mapping]], path: str | Path, *,
                  title: str = "") -> Path:
    """Success rate against Chebyshev distance, one curve per model.

    Args:
      curves: label -> rows of :meth:`LocalityResult.by_distance` (``distance``,
        ``success_rate``).
      path: the PNG to write.

    Returns:
      ``path``.
    """
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for label, rows in curves.items():
        d = [r["distance"] for r in rows]
        rate = [r["success_rate"] for r in rows]
        ax.plot(d, rate, marker="o", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Chebyshev distance max(|dx|, |dy|) from the attacked pixel")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "locality: attacks re-applied around the attacked pixel", fontsize=9)
    return save_figure(fig, path)
