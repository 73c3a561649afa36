"""Evaluation suites, one per file: ``pixeljax evaluate NAME --data SPEC --out DIR``.

Each file starts with the command that runs it and defines ``SUITE = Suite(...)``
(see ``pixeljax.evaluation.suite``); ``paper_cifar10.py`` is the suite ``paper-cifar10``.
"""
