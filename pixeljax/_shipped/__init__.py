"""Files the project ships beside its code: trained victims (``checkpoints/``), training recipes
(``train/``) and evaluation suites (``evaluate/``).

They live at the top of the repository. A wheel carries them inside the package, as
``pixeljax/_shipped/<kind>/`` (``pyproject.toml`` maps the top-level folders there), so
:func:`shipped_folder` looks inside the installed package first and then in the source checkout
the package was imported from (a checkout on ``sys.path`` or an editable install).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

KINDS = ("checkpoints", "train", "evaluate")


def shipped_folder(kind: str) -> Path:
    """The folder of shipped ``kind`` files (one of :data:`KINDS`); it may not exist, e.g. a
    checkout without ``checkpoints/``.

    >>> shipped_folder("evaluate").name
    'evaluate'
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of shipped files {kind!r}; expected one of {KINDS}")
    packaged = resources.files(__name__).joinpath(kind)
    if packaged.is_dir():  # an installed wheel
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / kind  # the repository's top-level folder
