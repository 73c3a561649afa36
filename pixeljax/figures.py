"""Figures: saving them, and grids of original and adversarial images. Drawn on matplotlib's
Agg canvas (no pyplot, no global state), so they work on machines without a display."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from pixeljax import results
from pixeljax.attack.perturb import apply_candidate


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Writes ``fig`` as a PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi)
    return path


def adversarial_grid(rows: Sequence[dict], images: dict[int, np.ndarray], pixels: int,
                     class_names: Sequence[str], path: str | Path, *, columns: int = 8,
                     title: str | None = None) -> Path:
    """Originals (top) and adversarial images (bottom), the changed pixels circled: red where
    the attack succeeded, orange where it did not.

    Args:
      rows: result rows (``pixeljax.results``) to show, at most ``columns`` of them.
      images: original uint8 image of each row's ``image_index``.
      pixels: pixels per attack.
      class_names: names in label order.
      path: where to write the PNG.
    """
    rows = list(rows)[:columns]
    n = max(len(rows), 1)
    fig = Figure(figsize=(1.9 * n, 5.0))
    axes = fig.subplots(2, n, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for j, row in enumerate(rows):
        image = images[row["image_index"]]
        channels = image.shape[-1]
        candidate = results.perturbation(row, pixels, channels)
        adversarial = np.asarray(apply_candidate(image, candidate)).astype(np.uint8)
        label, adv = row["label"], row["adversarial_class"]
        cmap = "gray" if channels == 1 else None
        axes[0, j].imshow(image.squeeze(), cmap=cmap, interpolation="nearest")
        axes[0, j].set_title(f"{class_names[label]}\n{row['true_prob_before']:.0%}", fontsize=8)
        axes[1, j].imshow(adversarial.squeeze(), cmap=cmap, interpolation="nearest")
        colour = "tab:red" if row["success"] else "tab:orange"
        axes[1, j].set_title(f"{class_names[adv]}\n{row['confidence']:.0%}", fontsize=8,
                             color=colour)
        for k in range(pixels):
            x, y = row[f"x{k}"], row[f"y{k}"]
            axes[1, j].add_patch(Circle((x, y), 1.8, fill=False, color=colour, lw=1.5))
    axes[0, 0].text(-0.15, 0.5, "original", transform=axes[0, 0].transAxes, rotation=90,
                    va="center", ha="right", fontsize=9)
    axes[1, 0].text(-0.15, 0.5, "adversarial", transform=axes[1, 0].transAxes, rotation=90,
                    va="center", ha="right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
