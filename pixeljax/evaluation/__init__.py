"""Evaluation suites: the one-pixel attack's experiments at full scale, with reports.

A suite (``evaluate/NAME.py``) names victims, pixel counts, modes, images and a budget;
:func:`run_suite` trains the victims that have no checkpoint yet and attacks every cell,
resumably, and :func:`write_report` turns the results folder into ``report.md`` with the
paper's published numbers beside the measured ones (Su, Vargas, Sakurai, arXiv 1710.08864).
"""

from pixeljax.attack.sizes import EngineSizes
from pixeljax.attack.spec import AttackSpec
from pixeljax.evaluation.plan import Plan, make_plan
from pixeljax.evaluation.report import write_report
from pixeljax.evaluation.runner import run_suite
from pixeljax.evaluation.store import SuiteResults, load_results
from pixeljax.evaluation.suite import MODES, Cell, Suite, Variant, Victim, load_suite, suite_names

# AttackSpec and EngineSizes are here for suite files: ``Suite(..., attack=AttackSpec(...))``.
__all__ = ["MODES", "AttackSpec", "Cell", "EngineSizes", "Plan", "Suite", "SuiteResults",
           "Variant", "Victim", "load_results", "load_suite", "make_plan", "run_suite", "suite_names",
           "write_report"]
