"""``pixeljax sweep``: the exhaustive one-pixel sweep into a results folder."""

from __future__ import annotations

from pathlib import Path

from pixeljax.cli import checks
from pixeljax.cli.attack import (data_options, n_images, selection_options, victim_and_data,
                                 victim_options)

ENGINE_FIELDS = ("slots", "batch_size", "dense")  # a sweep has no DE segments


def sweep_spec(args):
    """The :class:`~pixeljax.attack.sweep.SweepSpec` of the options."""
    from pixeljax.attack.sweep import SweepSpec, parse_levels

    options = dict(n_images=n_images(args), first=args.first, seed=args.seed,
                   precision=args.precision, sizes=checks.engine_sizes(args))
    if args.levels is not None:
        options["levels"] = parse_levels(args.levels)
    return SweepSpec(**{k: v for k, v in options.items() if v is not None})


def summary_line(summary: dict) -> str:
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


def _cmd_sweep(args) -> int:
    from pixeljax.attack.engine import local_devices
    from pixeljax.attack.sweep_run import sweep_folder
    from pixeljax.cli.attack import _aside, _nothing_attacked, _print_summary
    from pixeljax.notices import warn

    from pixeljax.attack.sweep_run import check_pixels

    checks.writable_folder(args.out, "--out")
    check_pixels(args.pixels)
    spec = sweep_spec(args)
    local_devices(args.devices)
    victim, data, record = victim_and_data(args)
    summary = sweep_folder(victim.predict, data, args.out, spec, victim=record,
                           progress=not args.quiet, devices=args.devices)
    _print_summary(summary, args.json)
    if summary.get("recheck_disagreements"):
        warn(f"{summary['recheck_disagreements']} class verdicts of the sweep differ from the "
             f"dense re-check of their candidate; the results report the re-check's")
    print(f"results: {Path(args.out) / 'results.csv'}", file=_aside(args))
    return _nothing_attacked(summary)


def register(sub) -> None:
    from pixeljax.attack.sizes import SWEEP_SLOTS
    from pixeljax.attack.sweep import CORNERS

    p = sub.add_parser("sweep", help="every pixel x a colour grid, all classes at once "
                                     "(exhaustive one-pixel sweep) into a results folder")
    victim_options(p)
    data_options(p)
    p.add_argument("--pixels", type=checks.positive_int, default=1,
                   help="the sweep changes one pixel (1, the default, is the only value)")
    selection_options(p, "sweep", seed="the sample's seed (default 0)")
    p.add_argument("--levels", metavar="V,V,...",
                   help=f"values each channel takes; the grid is every combination "
                        f"(default {','.join(map(str, CORNERS))}: the colour cube's corners)")
    checks.add_engine_options(p, ENGINE_FIELDS, helps=dict(
        slots=f"images swept at once (default {SWEEP_SLOTS})",
        batch_size="candidates per model call and device (default: the platform's "
                   "micro-batch)"))
    checks.add_precision_option(p)
    p.add_argument("--devices", type=int, metavar="N",
                   help="use the first N local devices (default: all)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)
