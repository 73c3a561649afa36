"""``pixeljax sweep``: the exhaustive one-pixel sweep into a results folder."""

from __future__ import annotations

from pathlib import Path

from pixeljax.cli import checks
from pixeljax.cli.options import (
    data_options,
    n_images,
    selection_options,
    victim_and_data,
    victim_options,
)
from pixeljax.cli.summaries import aside, nothing_attacked, print_summary

ENGINE_FIELDS = ("slots", "batch_size", "dense")  # a sweep has no DE segments


def sweep_spec(args):
    """The :class:`~pixeljax.attack.sweep.SweepSpec` of the options."""
    from pixeljax.attack.sweep import SweepSpec, parse_levels

    options = dict(n_images=n_images(args), first=args.first, seed=args.seed,
                   precision=args.precision, sizes=checks.engine_sizes(args))
    if args.levels is not None:
        options["levels"] = parse_levels(args.levels)
    return SweepSpec(**{k: v for k, v in options.items() if v is not None})


def _cmd_sweep(args) -> int:
    from pixeljax._plumbing.notices import warn
    from pixeljax.attack.mesh import local_devices
    from pixeljax.attack.sweep_run import check_pixels, sweep_folder

    checks.writable_folder(args.out, "--out")
    check_pixels(args.pixels)
    spec = sweep_spec(args)
    local_devices(args.devices)
    victim, data, record = victim_and_data(args)
    summary = sweep_folder(victim.predict, data, args.out, spec, victim=record,
                           progress=not args.quiet, devices=args.devices)
    print_summary(summary, args.json)
    if summary.get("recheck_disagreements"):
        warn(f"{summary['recheck_disagreements']} class verdicts of the sweep differ from the "
             f"dense re-check of their candidate; the results report the re-check's")
    print(f"results: {Path(args.out) / 'results.csv'}", file=aside(args))
    return nothing_attacked(summary)


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
