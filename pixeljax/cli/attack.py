"""``pixeljax attack``, ``demo`` and ``bench``; the attack options generated from the spec."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixeljax.cli import checks
from pixeljax.cli.options import (
    CLI_IMAGES,
    data_options,
    distributed_options,
    join,
    n_images,
    selection_options,
    victim_and_data,
    victim_options,
)
from pixeljax.cli.summaries import aside, attack_name, nothing_attacked, print_summary

DEMO_CPU = dict(images=12, popsize=100, maxiter=15, slots=4, batch_size=64)
DEMO_ACCELERATOR = dict(images=100, popsize=400, maxiter=100, slots=100, batch_size=8000)
# The bench sizes a command line overrides (the rest stay the platform's).
BENCH_SIZES = ("images", "popsize", "maxiter", "slots", "batch_size", "incremental_batch_size",
               "sweep_images", "agreement_candidates")


def attack_spec(args):
    """The :class:`~pixeljax.attack.spec.AttackSpec` of the attack options (unset ones keep the
    spec's defaults)."""
    from pixeljax.attack.spec import DEFAULTS, OPTION_FIELDS
    from pixeljax.errors import PixeljaxError
    from pixeljax.runs.modes import Mode

    goal = (Mode.ALL_TARGETS if args.all_targets else
            Mode.TARGETED if args.targeted is not None else Mode.NON_TARGETED)
    if args.threshold is not None and args.pixels is not None:
        raise PixeljaxError("--threshold changes every pixel value (the threshold attack); "
                            "--pixels is for the pixel attack: give one of them")
    # A stopping rule the goal never uses would only be recorded, and refuse a later resume.
    if goal is Mode.NON_TARGETED and args.target_threshold is not None:
        raise PixeljaxError("--target-threshold stops targeted attacks (--targeted, "
                            "--all-targets); a non-targeted one stops on --true-threshold")
    if goal is not Mode.NON_TARGETED and args.true_threshold is not None:
        raise PixeljaxError("--true-threshold stops non-targeted attacks; a targeted one stops "
                            "on --target-threshold")
    return DEFAULTS.with_options(
        goal=goal, target_class=args.targeted, n_images=n_images(args), first=args.first,
        precision=args.precision, sizes=checks.engine_sizes(args),
        **{k: getattr(args, k) for k in OPTION_FIELDS})


def _attack(args) -> dict:
    from pixeljax.attack.mesh import local_devices
    from pixeljax.attack.run import attack_folder

    checks.writable_folder(args.out, "--out")
    spec = attack_spec(args)
    join(args)
    local_devices(args.devices)  # a count that does not fit fails before any work
    victim, data, record = victim_and_data(args)
    return attack_folder(victim.predict, data, args.out, spec, victim=record,
                         progress=not args.quiet, devices=args.devices)


def _cmd_attack(args) -> int:
    import jax

    from pixeljax.runs import results

    summary = _attack(args)
    process, count = jax.process_index(), jax.process_count()
    if process == 0:
        print_summary(summary, args.json)
    print(f"results: {Path(args.out) / results.shard_name(process, count)}"
          + (" (pixeljax.runs.results.read_rows merges the shards of all processes)"
             if count > 1 else ""), file=aside(args))
    return nothing_attacked(summary)


def _demo_budget() -> dict:
    """The demo's budget on this platform: seconds on a CPU, the paper's on an accelerator."""
    import jax

    return DEMO_CPU if jax.default_backend() == "cpu" else DEMO_ACCELERATOR


def _cmd_demo(args) -> int:
    import numpy as np

    from pixeljax.data import load_dataset
    from pixeljax.reporting.figures import adversarial_grid
    from pixeljax.runs.attack_result import AttackResult

    for key, value in _demo_budget().items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    images = ("shipped CIFAR-10 test images" if args.data == "sample" else
              f"{args.split} images of {args.data}")
    print(f"one-pixel attack on the shipped {args.model} with the first {args.images} {images} "
          f"(population {args.popsize}, {args.maxiter} generations)", file=aside(args))
    summary = _attack(args)
    print_summary(summary, args.json)
    found = AttackResult.from_folder(args.out).attacked()
    found = found.take(np.argsort(~found.success, kind="stable"))  # successes first
    data = load_dataset(args.data, args.split)
    images = {int(i): x for i, x in zip(data.index, data.x)}
    png = adversarial_grid(found, images, data.class_names,
                           Path(args.out) / "demo.png",
                           title=f"{args.model}: {attack_name(summary)} attack "
                                 f"({summary['success_rate']:.0%} fooled)")
    print(f"results: {Path(args.out) / 'results.csv'}\nfigure: {png}", file=aside(args))
    return nothing_attacked(summary)


def _cmd_bench(args) -> int:
    import dataclasses

    import jax

    from pixeljax.attack.mesh import local_devices
    from pixeljax.attack.validation import check_victim_fits
    from pixeljax.bench.measure import BenchConfig, device_scaling, run_bench, untrained
    from pixeljax.data import load_dataset
    from pixeljax.victims.checkpoint import load_victim
    from pixeljax.victims.onnx import fitted, is_onnx, layout_of

    if args.torch is not None:  # refused before any work
        from pixeljax.bench.torch_model import check_torch_file
        from pixeljax.errors import PixeljaxError

        if not is_onnx(args.model) or args.untrained or args.devices:
            raise PixeljaxError("--torch compares a PyTorch network with its ONNX export: give "
                                "the export as --model net.onnx (without --untrained and "
                                "--devices)")
        check_torch_file(args.torch)
    for n in args.devices or ():
        local_devices(n)  # a count that does not fit fails before any work
    if args.untrained:  # random weights and images of the network's size: speed only
        victim, data = untrained(args.model, max(args.images or 8, args.sweep_images or 2) + 1)
    else:
        victim = load_victim(args.model, args.checkpoint)
        data = load_dataset(args.data, "test")
        if is_onnx(args.model):  # its layout and image size, from the data
            layout = layout_of(victim.model.graph, data.x.shape[1:], victim.model.layout)
            victim = fitted(victim, data.x.shape[1:])
        check_victim_fits(victim, data.x.shape[1:], f"--data {args.data} ({data.source})")
    config = BenchConfig.for_platform(jax.default_backend())
    config = dataclasses.replace(config, **{k: getattr(args, k) for k in BENCH_SIZES
                                            if getattr(args, k) is not None})
    if args.devices:
        return _print_scaling(device_scaling(victim.predict, data, config, args.devices),
                              args)
    torch_logits = None
    if args.torch is not None:
        from pixeljax.bench.torch_model import check_same_network, load_torch_model

        torch_logits = load_torch_model(args.torch, layout)  # the ONNX file's
        check_same_network(torch_logits, victim.predict, data.x, args.model, args.torch)
    report = run_bench(victim.predict, data, config, torch_logits=torch_logits)
    report["model"], report["untrained"] = args.model, bool(args.untrained)
    if args.torch is not None:
        import torch

        from pixeljax.victims.onnx import file_sha256

        # the file by name and content: a report names no machine's paths
        report["torch"] = {"file": Path(args.torch).name, "sha256": file_sha256(args.torch),
                           "version": torch.__version__, "threads": torch.get_num_threads()}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.model} on {report['device']} ({report['platform']}), config {report['config']}")
    rates = report["matmul_flops_per_second"]
    print(f"matmul (2048^2, XLA)  {rates['float32'] / 1e9:12,.1f} GFLOP/s float32, "
          f"{rates['bfloat16'] / 1e9:,.1f} GFLOP/s bfloat16 (float32 accumulation)")
    print(f"(a) forward pass      {report['forward_images_per_second']:12,.0f} images/s")
    engines = report["engines"]
    for label, name in (("(b) engine, dense    ", "dense"),
                        ("(b') engine, increm.", "incremental"),
                        ("(b) dense, bfloat16  ", "dense bfloat16"),
                        ("(b') increm., bf16   ", "incremental bfloat16"),
                        ("(t) threshold, dense ", "threshold")):
        if name not in engines:
            continue
        e = engines[name]
        run = e["run"]
        print(f"{label}  {e['evaluations_per_second']:12,.0f} evaluations/s  (micro-batch "
              f"{e['batch_size']}, {e['macs_per_candidate'] / 1e6:,.1f} M multiply-adds per "
              f"candidate, {e['flops_per_second'] / 1e9:,.1f} GFLOP/s = "
              f"{e['fraction_of_matmul_float32']:.0%} of the float32 matmul rate"
              + (f", {e['fraction_of_matmul']:.0%} of bfloat16's" if e["precision"] != "float32"
                 else "")
              + f", {e['fraction_of_products']:.0%} of its own products run alone at "
              f"{e['products_flops_per_second'] / 1e9:,.1f} GFLOP/s"
              + f", {e['cache_bytes_per_slot'] / 2**20:,.2f} MiB cache per slot; "
              f"{e['scoring']}; {run['success']}/{run['attacked']} fooled"
              + (f", {run['precision_flips']} reversed by the float32 re-check"
                 if e["precision"] != "float32" else "") + ")")
    if report["cpu_bfloat16_instructions"] is False and report["bfloat16_over_float32"]:
        print("                      this CPU has no bfloat16 instructions (AVX512-BF16, AMX): "
              "it emulates bfloat16, and float32 is the faster precision here")
    agreement = report["precision_agreement"]
    if agreement:
        print(f"bfloat16 vs float32   {agreement['argmax_agreement']:12.2%} of "
              f"{agreement['candidates']:,} random one-pixel candidates get the same class "
              f"({agreement['argmax_disagreements']} differ); largest probability difference "
              f"{agreement['max_probability_difference']:.4f}")
    print(f"(c) NumPy DE, 1 image {report['numpy_de_evaluations_per_second']:12,.0f} evaluations/s")
    if report["numpy_threshold_evaluations_per_second"] is not None:
        print(f"(c_t) NumPy threshold {report['numpy_threshold_evaluations_per_second']:10,.0f} "
              f"evaluations/s  (1 image, th {config.threshold}, as ART's ThresholdAttack)")
    if report["torch_forward_images_per_second"] is not None:
        print(f"(f) PyTorch forward   {report['torch_forward_images_per_second']:12,.0f} images/s"
              f"  (torch {report['torch']['version']}, {report['torch']['threads']} threads)")
        print(f"(g) PyTorch DE, 1 img {report['torch_de_evaluations_per_second']:12,.0f} "
              f"evaluations/s")
    if report["sweep_run"]["images"]:
        print(f"(e) sweep, corners    {report['sweep_candidates_per_second']:12,.0f} "
              f"candidates/s  ({report['sweep_run']['images']} images)")
    print(f"(b)/(a) = {report['engine_over_forward']:.3f}   "
          f"(b')/(b) = {report['incremental_over_dense']:.2f} (multiply-adds "
          f"{report['incremental_macs_fraction']:.2f}x)   "
          f"(b)/(c) = {report['engine_over_numpy_de']:.2f}"
          + (f"   (e)/(b') = {report['sweep_over_incremental']:.2f}"
             if report["sweep_over_incremental"] is not None else "")
          + (f"   (t)/(b) = {report['threshold_over_dense']:.2f}"
             if report.get("threshold_over_dense") is not None else "")
          + (f"   (t)/(c_t) = {report['threshold_over_numpy_threshold']:.2f}"
             if report["threshold_over_numpy_threshold"] is not None else "")
          + (f"   (a)/(f) = {report['forward_over_torch_forward']:.2f}"
             f"   (b)/(g) = {report['engine_over_torch_de']['dense']:.2f}"
             f"   (b')/(g) = {report['engine_over_torch_de']['incremental']:.2f}"
             if report["engine_over_torch_de"] is not None else "")
          + "".join(f"   bfloat16/float32 {kind} = {ratio:.2f}"
                    for kind, ratio in report["bfloat16_over_float32"].items()))
    return 0


def _print_scaling(report: dict, args) -> int:
    report["model"], report["untrained"] = args.model, bool(args.untrained)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.model} on {report['device']} ({report['platform']}), {report['slots']} slots "
          f"and {report['images']} images per device, config {report['config']}")
    print(f"{'devices':>7}  {'evaluations/s':>14}  {'vs 1 device':>11}  {'per device':>10}")
    for row in report["runs"]:
        print(f"{row['devices']:>7}  {row['evaluations_per_second']:>14,.0f}  "
              f"{row['speedup']:>10.2f}x  {row['efficiency']:>10.0%}")
    if report["platform"] == "cpu":
        print("(CPU 'devices' share the same cores: this shows the mechanism, not a speed-up)")
    return 0


def _device_list(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected device counts like 1,2,4,8, got {text!r}")
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"device counts must be >= 1, got {text!r}")
    return counts


def _attack_options(p: argparse.ArgumentParser, budget: dict | None = None) -> None:
    """The attack's options, generated from the fields of
    :class:`~pixeljax.attack.spec.AttackSpec` and its engine sizes: each left unset keeps the
    spec's default (shown in its help; ``budget``: a command's own defaults, as shown) and is
    checked as the spec checks it. Nothing here may touch JAX's devices (a multi-host run
    joins first)."""
    from pixeljax._plumbing import settings
    from pixeljax.attack.spec import OPTION_FIELDS, AttackSpec

    budget = budget or {}
    data_options(p)
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--targeted", type=checks.count, metavar="CLASS",
                      help="attack towards CLASS (images of CLASS are left out)")
    goal.add_argument("--all-targets", action="store_true",
                      help="the paper's protocol: each image towards each other class")
    selection_options(p, images=budget.get("images", CLI_IMAGES), first=budget.get("first"))
    settings.add_options(p, AttackSpec, [f for f in OPTION_FIELDS if f != "seed"],
                         shown=budget)
    checks.add_engine_options(p, shown=budget)
    checks.add_precision_option(p)
    p.add_argument("--devices", type=int, metavar="N",  # local_devices names the range
                   help="use the first N local devices (default: all; slots are rounded up "
                        "to a multiple of N, --batch-size is per device)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub) -> None:
    p = sub.add_parser("attack", help="attack N images and write a results folder")
    victim_options(p)
    _attack_options(p)
    distributed_options(p)
    p.set_defaults(func=_cmd_attack)

    p = sub.add_parser("demo", help="a one-pixel attack on the shipped AllConv and sample")
    p.add_argument("--model", default="allconv", help="default allconv")
    p.add_argument("--out", type=checks.path, default=Path("runs/demo"),
                   help="default runs/demo")
    _attack_options(p, budget={**{k: f"{v} on a CPU, {DEMO_ACCELERATOR[k]} on a GPU or TPU"
                                  for k, v in DEMO_CPU.items()},
                               "first": "the demo always attacks the first N images"})
    p.set_defaults(func=_cmd_demo, first=True)

    from pixeljax._plumbing import settings
    from pixeljax.bench.measure import BenchConfig

    p = sub.add_parser("bench", help="engine throughput (dense and incremental scoring, and "
                                     "the threshold attack at th 10) vs forward pass vs "
                                     "NumPy DE")
    p.add_argument("--model", default="allconv",
                   help="a registered victim or an ONNX file model.onnx (default allconv)")
    p.add_argument("--checkpoint", type=checks.path)
    p.add_argument("--data", default="sample")
    p.add_argument("--devices", type=_device_list, metavar="N,N,...",
                   help="measure the engine on each device count (e.g. 1,2,4,8) with the same "
                        "slots and images per device, as ratios to one device")
    p.add_argument("--untrained", action="store_true",
                   help="random weights and random images of the network's own size (e.g. "
                        "allconv_imagenet at 224 x 224): speed, not success")
    settings.add_options(p, BenchConfig, BENCH_SIZES,
                         shown=dict.fromkeys(BENCH_SIZES, "the platform's bench size"))
    p.add_argument("--torch", type=checks.path, metavar="FILE",
                   help="with --model net.onnx: the same network in PyTorch, a TorchScript "
                        "file (torch.jit.save(torch.jit.script(net), FILE)) or an exported "
                        "program (torch.export.save(torch.export.export(net.eval(), ...), "
                        "FILE.pt2)); also measures PyTorch's own forward pass and the "
                        "one-image DE loop calling it (needs PyTorch)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench)
