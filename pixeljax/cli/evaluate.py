"""``pixeljax evaluate`` (run a suite) and ``pixeljax report`` (write its report)."""

from __future__ import annotations

import sys
from pathlib import Path

from pixeljax.cli import checks


def _log(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def _cmd_evaluate(args) -> int:
    from pixeljax.evaluation import load_suite, make_plan, run_suite, write_report
    from pixeljax.evaluation.runner import with_images

    if not args.dry_run:
        checks.writable_folder(args.out, "--out")
    suite = load_suite(args.suite)
    if args.dry_run:
        plan = make_plan(with_images(suite, images=args.images, sample=args.sample), args.out,
                         data=args.data, train_data=args.train_data,
                         train_missing=args.train_missing, sizes=checks.engine_sizes(args))
        print(plan.describe())
        if args.continue_from is not None:
            print(f"(a dry run restores nothing from {args.continue_from})")
        return 0
    summaries = run_suite(suite, args.out, data=args.data, train_data=args.train_data,
                          train_missing=args.train_missing, images=args.images,
                          sample=args.sample, sizes=checks.engine_sizes(args),
                          progress=not args.quiet, continue_from=args.continue_from, log=_log)
    for s in summaries:
        if s is not None:
            level = (f"{s['pixels']}px" if s.get("threshold") is None
                     else f"threshold {s['threshold']}")
            print(f"{s['model']} {level} {s['mode']}: {s['n_success']}/"
                  f"{s['n_attacked']} fooled ({s['success_rate']:.1%}), "
                  f"{s['wall_seconds']:.1f} s")
    if not args.no_report:
        print(f"report: {write_report(args.out, data=args.data)}")
    ran = [s for s in summaries if s is not None]
    if ran and not any(s["n_attacked"] for s in ran):
        print(f"error: no cell attacked any image: every victim misclassifies all "
              f"{ran[0]['n_images']} selected image(s) (they are skipped); check that --data "
              f"holds the images and labels the victims were trained for", file=sys.stderr)
        return 1
    return 0


def _cmd_report(args) -> int:
    from pixeljax.evaluation import write_report

    if args.results.exists():  # a missing folder is named by write_report
        checks.writable_folder(args.results, "results folder")
    print(f"report: {write_report(args.results, data=args.data)}")
    return 0


def _cmd_publish(args) -> int:
    from pixeljax.evaluation.publish import publish

    checks.writable_folder(args.results, "results folder")
    page = publish(args.results, args.out, command=args.command, readme=args.readme,
                   data=args.data)
    print(f"published: {page}")
    return 0


def _cmd_publish_bench(args) -> int:
    from pixeljax.bench.tables import bench_tables
    from pixeljax.reporting.readme_blocks import block, write_blocks

    base = args.readme.parent if args.readme else Path(".")
    tables = bench_tables(args.reports, base)
    if args.readme:
        write_blocks(args.readme, tables)
        print(f"published: {len(tables)} tables into {args.readme}")
        return 0
    print("\n\n".join(block(name, table) for name, table in tables.items()))
    return 0


def register(sub) -> None:
    from pixeljax._plumbing import settings
    from pixeljax.evaluation.suite import Suite

    p = sub.add_parser("evaluate", help="run an evaluation suite (evaluate/NAME.py): attack "
                                        "every cell, resumably")
    p.add_argument("suite", help="suite name (evaluate/NAME.py, e.g. paper-cifar10, quick) or "
                                 "path to a suite .py file")
    p.add_argument("--out", required=True, type=checks.path, help="results folder")
    p.add_argument("--data", help="images to attack (default: the suite's)")
    p.add_argument("--train-missing", action="store_true",
                   help="train victims that have no checkpoint with their recipe first (hours "
                        "on a CPU); without it they are skipped")
    p.add_argument("--train-data", help="training images for --train-missing (default: --data)")
    # The suite's own selection fields, with their checks; one of the two.
    settings.add_options(p.add_mutually_exclusive_group(), Suite, ("sample", "images"),
                         metavar="N")
    checks.add_engine_options(p)
    p.add_argument("--continue-from", type=checks.path, metavar="PUBLISHED",
                   help="first restore the cells --out lacks from a publication's run.tar.gz "
                        "(e.g. results/paper-cpu), then go on from them")
    p.add_argument("--dry-run", action="store_true", help="check and print the plan only")
    p.add_argument("--no-report", action="store_true", help="do not write report.md at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("report", help="write DIR/report.md for a results folder (a suite's, "
                                      "or one attack's or sweep's)")
    p.add_argument("results", type=checks.path,
                   help="the --out folder of 'pixeljax evaluate', 'attack' or 'sweep'")
    p.add_argument("--data", help="the attacked images, for example grids (default: the "
                                  "suite's data as recorded)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("publish", help="copy a suite's report, figures, tables and cell "
                                       "summaries into a small folder, with its headline table")
    p.add_argument("results", type=checks.path, help="the --out folder of 'pixeljax evaluate'")
    p.add_argument("--out", required=True, type=checks.path,
                   help="the folder to publish into (e.g. results/paper-cpu; replaced)")
    p.add_argument("--command", required=True,
                   help="the command that produced the results, as a reader should run it")
    p.add_argument("--readme", type=checks.path,
                   help="also write the table into this README, between "
                        "<!-- published:NAME --> and <!-- /published:NAME --> (NAME: the "
                        "--out folder's name), and the mechanism tables into its block "
                        "NAME-mechanism if it has one")
    p.add_argument("--data", help="the attacked images, for the report's example grids and "
                                  "its clean confidence")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("publish-bench", help="the performance tables, from stored "
                                             "'pixeljax bench --json' reports")
    p.add_argument("reports", type=checks.path,
                   help="a folder of bench reports (e.g. results/bench: pixeljax bench "
                        "--model NAME --json > results/bench/NAME.json)")
    p.add_argument("--readme", type=checks.path,
                   help="write the tables into this README's blocks <!-- published:bench-... "
                        "--> instead of printing them")
    p.set_defaults(func=_cmd_publish_bench)
