"""Differential evolution: pure init/ask/tell/step functions and a SciPy-like minimiser."""

from pixeljax.de.core import (
                              DEParams,
                              DEState,
                              ask,
                              distinct_others,
                              init,
                              step,
                              tell,
                              uniform_population,
)
from pixeljax.de.minimize import OptimizeResult, differential_evolution

__all__ = ["DEParams", "DEState", "OptimizeResult", "ask", "differential_evolution",
           "distinct_others", "init", "step", "tell", "uniform_population"]
