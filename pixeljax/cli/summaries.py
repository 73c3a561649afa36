"""What a command prints of a run's summary: one line for an attack or a sweep, or one JSON
document; where the other lines go; the exit status of a run that attacked nothing."""

from __future__ import annotations

import json
import sys


def sweep_line(summary: dict) -> str:
    """A sweep's summary in one line."""
    return (f"{summary['model']} one-pixel sweep ({summary['candidates_per_image']:,} "
            f"candidates per image, levels {summary['levels']}): {summary['n_success']}/"
            f"{summary['n_attacked']} images fooled ({summary['success_rate']:.1%}), "
            f"{summary.get('targeted_success_rate', 0.0):.1%} of (image, target) pairs "
            f"reached, {summary.get('mean_classes_reached', 0.0):.2f} classes reached per "
            f"image, {summary['mean_vulnerable_pixels']:.1f} vulnerable pixels per image; "
            f"{summary['n_skipped']} skipped (misclassified); {summary['evaluations']:,} "
            f"candidates in {summary['wall_seconds']:.1f} s "
            f"({summary['evaluations_per_second']:,.0f}/s, {summary['scoring']})")


def print_summary(summary: dict, as_json: bool) -> None:
    """A run's summary: its line (and warnings), or one JSON document under ``--json``."""
    if as_json:
        print(json.dumps(summary))
        return
    if summary["mode"] == "sweep":
        print(sweep_line(summary))
        return
    print(f"{summary['model']} {attack_name(summary)} {summary['mode']}: "
          f"{summary['n_success']}/{summary['n_attacked']} images fooled "
          f"({summary['success_rate']:.1%}), mean confidence {summary['mean_confidence']:.1%}, "
          f"{summary['n_skipped']} skipped (misclassified); {summary['evaluations']:,} model "
          f"evaluations in {summary['wall_seconds']:.1f} s "
          f"({summary['evaluations_per_second']:,.0f}/s on {_scale(summary)})")
    if summary.get("precision", "float32") != "float32":
        print(f"scored in {summary['precision']}, every result re-checked in float32: "
              f"{summary.get('precision_flips', 0)} success(es) reversed by the re-check")
    if summary.get("nonfinite_evaluations"):
        from pixeljax._plumbing.notices import warn

        warn(f"{summary['nonfinite_evaluations']:,} model evaluations in "
             f"{summary['nonfinite_attacks']} attacks gave NaN or infinite logits; they count "
             f"as the worst fitness, never as a success")


def attack_name(summary: dict) -> str:
    """"3-pixel" or "threshold 10", of a run's summary or configuration."""
    threshold = summary.get("threshold")
    return f"{summary['pixels']}-pixel" if threshold is None else f"threshold {threshold}"


def _scale(summary: dict) -> str:
    devices, processes = summary.get("devices", 1), summary.get("processes", 1)
    if devices == 1 and processes == 1:
        return str(summary["device"])
    return (f"{devices} x {summary['device']}"
            + (f" in {processes} processes" if processes > 1 else ""))


def aside(args):
    """Where lines beside the summary go: stderr under ``--json`` (stdout then holds exactly
    one JSON document), else stdout."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def nothing_attacked(summary: dict) -> int:
    """Exit status 1, with an error line, when no image could be attacked."""
    if summary["n_attacked"]:
        return 0
    print(f"error: none of the {summary['n_images']} image(s) was attacked: the victim "
          f"misclassifies every one of them (they are skipped); check that --data holds the "
          f"images and labels the victim was trained for", file=sys.stderr)
    return 1
