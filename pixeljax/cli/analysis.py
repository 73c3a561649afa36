"""``pixeljax propagation`` and ``pixeljax locality`` (Vargas & Su, arXiv 1902.02947)."""

from __future__ import annotations

import json

from pixeljax.cli import checks


def _cmd_propagation(args) -> int:
    from pixeljax.analysis import run_propagation

    checks.writable_folder(args.out, "--out")
    summary = run_propagation(args.results, args.out, limit=args.limit, model=args.model,
                              batch_size=args.batch_size)
    plural = "s" if summary["attacks"] != 1 else ""
    print(f"{summary['model']}: propagation maps of {summary['attacks']} attack{plural} "
          f"({summary['successful']} successful) over {len(summary['layers'])} layers "
          f"written to {args.out}")
    return 0


def _cmd_locality(args) -> int:
    from pixeljax.analysis import run_locality

    checks.writable_folder(args.out, "--out")
    summary = run_locality(args.results, args.out, radius=args.radius, model=args.model,
                           batch_size=args.batch_size)
    for entry in summary["models"]:
        rates = ", ".join(f"d={d}: {r:.3f}" for d, r in enumerate(entry["success_rate"]))
        print(f"{entry['model']} ({entry['attacks']} successful attacks): {rates}")
    print(json.dumps({"files": summary["files"]}))
    return 0


def _cmd_export_adversarial(args) -> int:
    from pixeljax.analysis.export import check_destination, export_adversarial

    check_destination(args.out)  # before the victim and data load
    summary = export_adversarial(args.results, args.out)
    print(f"{summary['images']} adversarial image(s) of {summary['model']} written to "
          f"{summary['file']} (attack them again, or train on them, with --data)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("propagation", help="propagation maps of the attacks in a results folder")
    p.add_argument("--results", required=True, type=checks.path,
                   help="results folder of an attack")
    p.add_argument("--out", required=True, type=checks.path,
                   help="folder for the figures and tables")
    p.add_argument("--limit", type=checks.positive_int,
                   help="analyse the first N finished attacks only")
    p.add_argument("--model", help="refuse results of any other model")
    p.add_argument("--batch-size", type=checks.positive_int, default=32,
                   help="attacks per compiled call")
    p.set_defaults(func=_cmd_propagation)

    p = sub.add_parser("locality", help="success of the attacks moved around the attacked "
                                        "pixel, by Chebyshev distance")
    p.add_argument("--results", required=True, type=checks.path, nargs="+",
                   help="results folder(s) of attacks; one curve each")
    p.add_argument("--out", required=True, type=checks.path,
                   help="folder for locality.csv/.png")
    p.add_argument("--radius", type=int, default=2,  # check_radius names the image's range
                   help="largest distance max(|dx|, |dy|) (default 2)")
    p.add_argument("--model", help="refuse results of any other model")
    p.add_argument("--batch-size", type=checks.positive_int, default=512,
                   help="images per compiled call")
    p.set_defaults(func=_cmd_locality)

    p = sub.add_parser("export-adversarial",
                       help="a results folder's successful adversarial images as a .npz")
    p.add_argument("results", type=checks.path, help="results folder of an attack or sweep")
    p.add_argument("--out", required=True, type=checks.path, help="new .npz file")
    p.set_defaults(func=_cmd_export_adversarial)
