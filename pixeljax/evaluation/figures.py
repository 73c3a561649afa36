"""Figures of a suite's report: class-pair heatmaps, reachable-class histograms and success
rate by pixel count (the figures of Su, Vargas, Sakurai, arXiv 1710.08864).

Drawn with matplotlib's object API onto Agg canvases (no display, no pyplot state); every
function writes one PNG and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pixeljax.figures import save_figure


def class_pair_heatmaps(panels: Sequence[tuple[str, np.ndarray]], class_names: Sequence[str],
                        path: str | Path, *, title: str = "") -> Path:
    """One heatmap per panel of successful attacks by (original class, adversarial class).

    Args:
      panels: ``(title, (K, K) counts)``, e.g. one per pixel count of a model.
      class_names: the K class names.
      path: the PNG to write.
      title: the figure's title.
    """
    n = max(len(panels), 1)
    columns = min(n, 3)
    rows = math.ceil(n / columns)
    fig = Figure(figsize=(4.6 * columns, 4.3 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax in axes[len(panels):]:
        ax.axis("off")
    k = len(class_names)
    for ax, (name, counts) in zip(axes, panels):
        counts = np.asarray(counts)
        image = ax.imshow(counts, cmap="Reds", vmin=0, vmax=max(int(counts.max()), 1))
        ax.set_title(f"{name} ({int(counts.sum())} successes)", fontsize=9)
        ax.set_xticks(range(k), class_names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), class_names, fontsize=7)
        ax.set_xlabel("adversarial class", fontsize=8)
        ax.set_ylabel("original class", fontsize=8)
        if k <= 12:
            top = counts.max() if counts.size else 0
            for (i, j), v in np.ndenumerate(counts):
                if v:
                    ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=6,
                            color="white" if v > top / 2 else "black")
        fig.colorbar(image, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def classes_reached_histogram(series: Sequence[tuple[str, np.ndarray]], path: str | Path, *,
                              title: str = "") -> Path:
    """Bars of how many images reach exactly k other classes, one group of bars per series.

    Args:
      series: ``(label, (K,) counts)`` with counts[k] = images that reach k classes.
      path: the PNG to write.
      title: the figure's title.
    """
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(series), 1)
    for s, (label, counts) in enumerate(series):
        counts = np.asarray(counts)
        total = max(int(counts.sum()), 1)
        x = np.arange(len(counts)) + (s - (len(series) - 1) / 2) * width
        mean = float((np.arange(len(counts)) * counts).sum() / total)
        ax.bar(x, counts / total, width=width, label=f"{label} (mean {mean:.2f})")
    if series:
        ax.set_xticks(range(len(series[0][1])))
    ax.set_xlabel("number of classes an image can be perturbed to")
    ax.set_ylabel("fraction of attacked images")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def success_by_pixels(series: Sequence[tuple[str, str, Sequence[int], Sequence[float],
                                             Sequence[float], Sequence[float]]],
                      path: str | Path, *, paper: Sequence[tuple[str, int, float]] = (),
                      title: str = "") -> Path:
    """Success rate against pixels changed, with 95% intervals.

    Args:
      series: ``(model, mode, pixels, rates, lows, highs)``: one line per model (colour) and
        mode (line style), nudged sideways so that intervals do not hide each other.
      path: the PNG to write.
      paper: published points ``(label, pixels, rate)``, drawn as black crosses where the
        series have that pixel count.
      title: the figure's title.
    """
    fig = Figure(figsize=(7.6, 4.2), layout="constrained")
    ax = fig.subplots()
    models = list(dict.fromkeys(s[0] for s in series))
    styles = {"all-targets": "-", "non-targeted": "--"}
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    width = 0.25 / max(len(series), 1)
    for i, (model, mode, pixels, rates, lows, highs) in enumerate(series):
        rates, lows, highs = (np.asarray(a, float) for a in (rates, lows, highs))
        x = np.asarray(pixels, float) + (i - (len(series) - 1) / 2) * width
        ax.errorbar(x, rates * 100, yerr=[(rates - lows) * 100, (highs - rates) * 100],
                    marker="o", capsize=3, color=colours[model],
                    linestyle=styles.get(mode, ":"), label=f"{model} {mode}")
    shown = {p for s in series for p in s[2]}
    for label, pixels, rate in paper:
        if pixels in shown:
            ax.plot([pixels], [rate * 100], marker="x", color="black", linestyle="none",
                    markersize=9, label=label)
    ax.set_xticks(sorted(shown) or [1])
    ax.set_xlabel("pixels changed")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
