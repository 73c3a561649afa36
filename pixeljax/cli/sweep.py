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


def sweep_spec(args):
    """The :class:`~pixeljax.sweep.spec.SweepSpec` of the options."""
    from pixeljax.sweep.spec import SweepSpec, parse_levels

    options = dict(n_images=n_images(args), first=args.first, seed=args.seed,
                   precision=args.precision, sizes=checks.engine_sizes(args))
    if args.levels is not None:
        options["levels"] = parse_levels(args.levels)
    return SweepSpec(**{k: v for k, v in options.items() if v is not None})


def _cmd_sweep(args) -> int:
    from pixeljax._plumbing.notices import warn
    from pixeljax.attack.mesh import local_devices
    from pixeljax.sweep.folder import sweep_folder

    checks.writable_folder(args.out, "--out")
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
    from pixeljax.attack.sizes import SweepSizes
    from pixeljax.sweep.spec import CORNERS

    p = sub.add_parser("sweep", help="every pixel x a colour grid, all classes at once "
                                     "(exhaustive one-pixel sweep) into a results folder")
    victim_options(p)
    data_options(p)
    selection_options(p, "sweep", seed="the sample's seed (default 0)")
    p.add_argument("--levels", metavar="V,V,...",
                   help=f"values each channel takes; the grid is every combination "
                        f"(default {','.join(map(str, CORNERS))}: the colour cube's corners)")
    checks.add_engine_options(p, SweepSizes)
    checks.add_precision_option(p)
    p.add_argument("--devices", type=int, metavar="N",
                   help="use the first N local devices (default: all)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)
