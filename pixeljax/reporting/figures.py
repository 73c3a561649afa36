"""Every figure of the project, drawn with matplotlib's object API onto Agg canvases (no
display, no pyplot state, no global backend switch); every function writes one PNG and returns
its path.

  * attacks: :func:`adversarial_grid` (originals above adversarial images);
  * a suite's report (Su, Vargas, Sakurai, arXiv 1710.08864): :func:`class_pair_heatmaps`,
    :func:`classes_reached_histogram`, :func:`success_by_pixels`,
    :func:`success_by_confidence`;
  * why the attack works (Vargas & Su, arXiv 1902.02947): :func:`draw_maps` (propagation maps)
    and :func:`draw_locality`;
  * the exhaustive sweep: :func:`vulnerability_maps`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from matplotlib.ticker import MaxNLocator

from pixeljax.attack.perturb import adversarial_images

if TYPE_CHECKING:
    from pixeljax.runs.attack_result import AttackResult

MAX_COLUMNS = 6  # layers per row of a propagation-map figure
# How adversarial_grid marks an attack's pixels, by outcome (matplotlib's tab: palette); the
# suite report's caption names the same colours.
OUTCOME_COLOURS = {True: "red", False: "orange"}


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Writes ``fig`` as a PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi)
    return path


def adversarial_grid(shown: AttackResult, images: dict[int, np.ndarray],
                     class_names: Sequence[str], path: str | Path, *, columns: int = 8,
                     title: str | None = None) -> Path:
    """Originals (top) and adversarial images (bottom), the changed pixels circled in
    :data:`OUTCOME_COLOURS`: red where the attack succeeded, orange where it did not (a
    threshold attack, which changes every pixel, circles none; its titles take the colours).

    Args:
      shown: the attacks to show, at most ``columns`` of them.
      images: original uint8 image of each attack's ``image_index``.
      class_names: names in label order.
      path: where to write the PNG.
    """
    shown = shown.take(slice(0, columns))
    n = max(len(shown), 1)
    fig = Figure(figsize=(1.9 * n, 5.0))
    axes = fig.subplots(2, n, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for j in range(len(shown)):
        image = images[int(shown.image_index[j])]
        channels = image.shape[-1]
        adversarial = adversarial_images(shown.take([j]), image[None])[0].astype(np.uint8)
        label, adv = shown.label[j], shown.adversarial_class[j]
        cmap = "gray" if channels == 1 else None
        axes[0, j].imshow(image.squeeze(), cmap=cmap, interpolation="nearest")
        axes[0, j].set_title(f"{class_names[label]}\n{shown.true_prob_before[j]:.0%}",
                             fontsize=8)
        axes[1, j].imshow(adversarial.squeeze(), cmap=cmap, interpolation="nearest")
        colour = f"tab:{OUTCOME_COLOURS[bool(shown.success[j])]}"
        axes[1, j].set_title(f"{class_names[adv]}\n{shown.confidence[j]:.0%}", fontsize=8,
                             color=colour)
        for x, y in shown.perturbation[j, :, :2]:
            axes[1, j].add_patch(Circle((x, y), 1.8, fill=False, color=colour, lw=1.5))
    axes[0, 0].text(-0.15, 0.5, "original", transform=axes[0, 0].transAxes, rotation=90,
                    va="center", ha="right", fontsize=9)
    axes[1, 0].text(-0.15, 0.5, "adversarial", transform=axes[1, 0].transAxes, rotation=90,
                    va="center", ha="right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


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
                      title: str = "", ylabel: str = "success rate (%)",
                      xlabel: str = "pixels changed") -> Path:
    """Success rate (or another rate, named by ``ylabel``) against pixels changed, with 95%
    intervals.

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
    styles = {"all-targets": "-", "non-targeted": "--",
              "L0 pixels": "-", "L-inf threshold": "--"}  # modes, or robustness levels' families
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
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def draw_maps(maps, path: str | Path, *, title: str = "",
              markers: Sequence[tuple[int, int]] | None = None) -> Path:
    """One panel pair per layer, in the model's order: PM_avg above PM_max.

    Each panel's colours run from 0 (black) to its own largest value (written in its title).

    Args:
      maps: the :class:`~pixeljax.analysis.propagation.PropagationMaps` of one attack, or an
        average: ``(h, w)`` maps per layer (NaN cells are left blank).
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


def vulnerability_maps(flips: np.ndarray, colours: int, path: str | Path, *,
                       image_index: Sequence[int] = (), examples: int = 4,
                       images: Mapping[int, np.ndarray] | None = None, title: str = "") -> Path:
    """Where one grid-colour pixel fools the network (an exhaustive sweep's maps).

    Panels: the mean over images of the fraction of grid colours that fool the network at each
    position; the fraction of images that some colour fools there; then the maps of the
    ``examples`` most vulnerable images.

    Args:
      flips: (N, H, W) grid colours at each position that fool the network, per image.
      colours: colours in the grid.
      path: the PNG to write.
      image_index: (N,) the images' indices, for the example panels' titles.
      images: uint8 images by index: each example's map is drawn over its image.
    """
    flips = np.asarray(flips)
    n = len(flips)
    order = np.argsort(-(flips > 0).sum(axis=(1, 2)), kind="stable")[:examples] if n else []
    panels = [("mean fraction of colours that fool", flips.mean(0) / colours if n else None),
              ("fraction of images fooled here", (flips > 0).mean(0) if n else None)]
    under = {}
    for i in order:
        name = f"image {int(image_index[i])}" if len(image_index) else f"#{i}"
        label = f"{name}: {int((flips[i] > 0).sum())} pixels"
        panels.append((label, flips[i] / colours))
        if images is not None and len(image_index) and int(image_index[i]) in images:
            under[label] = np.asarray(images[int(image_index[i])])
    fig = Figure(figsize=(2.6 * len(panels), 2.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (label, values) in zip(axes, panels):
        if label in under:  # the map over its image, where no colour fools it left clear
            picture = under[label]
            ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture,
                      cmap="gray" if picture.shape[-1] == 1 else None)
            values = np.ma.masked_equal(values, 0)
        if values is not None:
            image = ax.imshow(values, cmap="magma", vmin=0, vmax=1 if label in under else None,
                              interpolation="nearest", alpha=0.75 if label in under else 1.0)
            fig.colorbar(image, ax=ax, shrink=0.7)
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"one-pixel vulnerability over {n} images", fontsize=10)
    return save_figure(fig, path)


def success_by_confidence(panels: Sequence[tuple[str, str, Sequence[tuple]]],
                          bins: Sequence[str], path: str | Path, *, title: str = "") -> Path:
    """One panel per binned variable: a line per cell across the bins, with 95% intervals
    where given.

    Args:
      panels: ``(xlabel, ylabel, series)``, each series ``(label, values, lows, highs)`` over
        ``bins`` (NaN: an empty bin; ``lows``/``highs`` None: no interval). A ylabel with "%"
        shows fractions as percentages.
      bins: the bins' labels.
      path: the PNG to write.
      title: the figure's title.
    """
    fig = Figure(figsize=(5.0 * max(len(panels), 1) + 2.2, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1)))
    labels = list(dict.fromkeys(s[0] for _, _, series in panels for s in series))
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    styles = ("-", "--", "-.", ":")
    handles = {}
    for ax, (xlabel, ylabel, series) in zip(axes, panels):
        scale = 100 if "%" in ylabel else 1
        width = 0.3 / max(len(series), 1)
        for i, (label, values, lows, highs) in enumerate(series):
            values = np.asarray(values, float) * scale
            x = np.arange(len(bins)) + (i - (len(series) - 1) / 2) * width
            yerr = None if lows is None else [
                values - np.asarray(lows, float) * scale, np.asarray(highs, float) * scale - values]
            handles[label] = ax.errorbar(x, values, yerr=yerr, marker="o", capsize=2,
                                         color=colours[label], elinewidth=0.8,
                                         linestyle=styles[labels.index(label) // 10 % 4])
        ax.set_xticks(range(len(bins)), bins, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if scale == 100:
            ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
    if handles:
        fig.legend(list(handles.values()), list(handles), fontsize=7, loc="outside right upper")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
