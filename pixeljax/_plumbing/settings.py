"""Settings fields that carry their own range and help: each is checked in one place
(:func:`check_fields`, from a dataclass's ``__post_init__``) and becomes a command-line option
in one place (:func:`add_options`), so a default, a bound and its message are written once.

A field is made by :func:`count`, :func:`number`, :func:`choice` or :func:`flag`; its metadata
records the kind, the bounds and the help line.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np

from pixeljax.errors import PixeljaxError


def count(default, least: int, help: str, *, optional: bool = False, most: int | None = None,
          shown=None):
    """An integer field >= ``least`` (and <= ``most``); ``optional``: None is allowed too;
    ``shown``: the default a help line names when ``default`` is None (the run picks it)."""
    return dataclasses.field(default=default, metadata=dict(
        kind="count", least=least, most=most, optional=optional, help=help, shown=shown))


def number(default, low: float, high: float, help: str, *, low_open: bool = False,
           high_open: bool = False, optional: bool = False, label: str | None = None):
    """A finite float field in [low, high] (open at ``low`` with ``low_open``, at ``high`` with
    ``high_open``); ``label`` names it in messages (default: the field's name)."""
    return dataclasses.field(default=default, metadata=dict(
        kind="number", low=low, high=high, low_open=low_open, high_open=high_open,
        optional=optional, help=help, label=label))


def choice(default, choices: tuple[str, ...], help: str):
    """One of ``choices``."""
    return dataclasses.field(default=default, metadata=dict(kind="choice", choices=choices,
                                                            help=help))


def flag(default: bool, help: str):
    """True or False (a command-line switch)."""
    return dataclasses.field(default=default, metadata=dict(kind="flag", help=help))


def counts(default: tuple[int, ...], least: int, help: str):
    """A non-empty tuple of distinct integers >= ``least`` (e.g. a suite's pixel counts)."""
    return dataclasses.field(default=default, metadata=dict(kind="counts", least=least,
                                                            most=None, help=help))


def choices(default: tuple[str, ...], allowed: tuple[str, ...], help: str):
    """A non-empty tuple of distinct values from ``allowed`` (e.g. a suite's modes)."""
    return dataclasses.field(default=default, metadata=dict(kind="choices", choices=allowed,
                                                            help=help))


def is_int(value) -> bool:
    """A Python or NumPy integer, but not a bool (``True`` is no count)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _range(meta: dict) -> str:
    """A number field's range, e.g. "in (0, 2]" or ">= 0"."""
    low, opens = f"{meta['low']:g}", meta["low_open"]
    if math.isinf(meta["high"]):
        return f"{'>' if opens else '>='} {low}"
    return (f"in {'(' if opens else '['}{low}, {meta['high']:g}"
            f"{')' if meta.get('high_open') else ']'}")


def _violation(value, meta: dict) -> str | None:
    """What a count or number ``value`` must be when it breaks the field's bounds (e.g. "an
    integer >= 4"); None when it keeps them."""
    if meta["kind"] == "count":
        if not is_int(value) or value < meta["least"]:
            return f"an integer >= {meta['least']}"
        if meta["most"] is not None and value > meta["most"]:
            return f"an integer <= {meta['most']}"
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        return "a number"
    value = float(value)
    if not math.isfinite(value) or value < meta["low"] or value > meta["high"] or (
            meta["low_open"] and value == meta["low"]) or (
            meta.get("high_open") and value == meta["high"]):
        return f"a finite number {_range(meta)}"
    return None


def check_value(name: str, value, meta: dict):
    """``value`` checked (and normalised: a number as a float) against a field's ``meta``.

    Raises:
      PixeljaxError: naming the setting, its range and the value.
    """
    kind = meta["kind"]
    if value is None and meta.get("optional"):
        return None
    if kind in ("count", "number"):
        broken = _violation(value, meta)
        if broken:
            got = float(value) if kind == "number" and broken != "a number" else value
            raise PixeljaxError(f"{meta.get('label') or name} must be {broken}, got {got!r}")
        return int(value) if kind == "count" else float(value)
    if kind in ("counts", "choices"):
        return _check_tuple(name, value, meta)
    if kind == "choice":
        if value not in meta["choices"]:
            raise PixeljaxError(f"unknown {name} {value!r}; expected one of {meta['choices']}")
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise PixeljaxError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_tuple(name: str, value, meta: dict) -> tuple:
    """A ``counts`` or ``choices`` field's value: a non-empty tuple of distinct valid values."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise PixeljaxError(f"{name} must be a tuple, got {value!r}")
    value = tuple(value)
    if meta["kind"] == "counts":
        bad = [v for v in value if _violation(v, dict(meta, kind="count"))]
        what = f"integers >= {meta['least']}"
    else:
        bad = [v for v in value if v not in meta["choices"]]
        what = f"among {meta['choices']}"
    if not value:
        raise PixeljaxError(f"{name} must hold at least one value ({what})")
    if bad:
        raise PixeljaxError(f"{name} must be {what}, got {value}")
    if len(set(value)) != len(value):
        raise PixeljaxError(f"{name} must not repeat, got {value}")
    return tuple(int(v) for v in value) if meta["kind"] == "counts" else value


def check_fields(obj, prefix: str = "") -> None:
    """Checks (and normalises in place) every settings field of the frozen dataclass ``obj``;
    ``prefix`` starts each message (e.g. ``"training config: "``)."""
    for field in dataclasses.fields(obj):
        if "kind" in field.metadata:
            try:
                value = check_value(field.name, getattr(obj, field.name), field.metadata)
            except PixeljaxError as e:
                raise PixeljaxError(f"{prefix}{e}") from None
            object.__setattr__(obj, field.name, value)


def meta(cls, name: str) -> dict:
    """The settings metadata of field ``name`` of ``cls``."""
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == name)


def count_type(least: int, most: int | None = None):
    """An argparse type: an integer in [least, most] (a bad value is one usage line)."""
    return _parser("value", dict(kind="count", least=least, most=most, optional=False))


def number_type(low: float, high: float = math.inf, *, low_open: bool = False):
    """An argparse type: a finite float in [low, high] (``low_open``: (low, high])."""
    return _parser("value", dict(kind="number", low=low, high=high, low_open=low_open,
                                 optional=False, label=None))


def _parser(name: str, meta: dict):
    """An argparse type that checks a value as the field does (a bad value is one usage
    line)."""
    def parse(text: str):
        try:
            value = int(text) if meta["kind"] == "count" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if meta['kind'] == 'count' else 'a number'}, got "
                f"{text!r}") from None
        broken = _violation(value, meta)
        if broken:
            raise argparse.ArgumentTypeError(f"expected {broken}, got {text!r}")
        return check_value(name, value, meta)
    parse.__name__ = "integer" if meta["kind"] == "count" else "number"
    return parse


def argument_type(cls, name: str):
    """The argparse type of field ``name`` of ``cls`` (for options that take its values)."""
    return _parser(name, meta(cls, name))


def add_options(parser, cls, names, *, shown: dict | None = None,
                helps: dict | None = None, defaults=None, metavar: str | None = None) -> None:
    """Adds ``--<name>`` (underscores as dashes) for each field ``name`` of ``cls``, with its
    type, choices and help; unset options stay None (the field's default applies). The help
    names the default: ``shown[name]`` (a command's own), else the field's ``shown``, else its
    default (of ``defaults``, an instance, else the field's); ``helps[name]`` replaces the
    whole line; ``metavar`` names the values of the options that take one."""
    shown, helps = shown or {}, helps or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names:
        m = meta(cls, name)
        flag_name = "--" + name.replace("_", "-")
        own = getattr(defaults, name) if defaults is not None else fields[name].default
        default = next((v for v in (shown.get(name), m.get("shown"), own)
                        if v is not None and v is not dataclasses.MISSING), None)
        said = default is not None and m["kind"] != "flag"
        text = helps.get(name) or (f"{m['help']} (default {default})" if said else m["help"])
        if m["kind"] == "flag":
            parser.add_argument(flag_name, action="store_true", default=None, help=text)
        elif m["kind"] == "choice":
            parser.add_argument(flag_name, choices=m["choices"], help=text)
        else:
            parser.add_argument(flag_name, type=_parser(name, m), help=text, metavar=metavar)
