"""Why the one-pixel attack works: propagation maps and locality analysis.

After Vargas & Su, "Understanding the One-Pixel Attack: Propagation Maps and Locality Analysis",
arXiv 1902.02947 (AISafety 2019):

  * :func:`propagation_maps` / :func:`batch_propagation_maps`: per layer, the channel-mean and
    channel-max of |F(x) - F(x')| relative to the clean layer's maximum, for any model that
    exposes ``activations(images) -> [(name, array)]``;
  * :func:`locality`: the attacks re-applied at every position within a Chebyshev radius of the
    attacked pixel, success rate by distance;
  * :func:`run_propagation`, :func:`run_locality`: both analyses of a results folder of
    ``pixeljax attack``, with tables and figures.
"""

from pixeljax.analysis.attacks import AttackSet, load_attacks
from pixeljax.analysis.locality import LocalityResult, check_radius, locality, offsets
from pixeljax.analysis.propagation import (
                                           PropagationMaps,
                                           aligned_average,
                                           as_activations,
                                           average_maps,
                                           batch_propagation_maps,
                                           layer_maps,
                                           layer_names,
                                           propagation_maps,
)
from pixeljax.analysis.run import run_locality, run_propagation
from pixeljax.reporting.figures import draw_locality, draw_maps

__all__ = [
    "AttackSet", "LocalityResult", "PropagationMaps", "aligned_average", "as_activations",
    "average_maps", "batch_propagation_maps", "check_radius", "draw_locality", "draw_maps",
    "layer_maps", "layer_names", "load_attacks", "locality", "offsets", "propagation_maps",
    "run_locality", "run_propagation",
]
