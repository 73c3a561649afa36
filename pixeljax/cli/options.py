"""The options every command that attacks shares (the victim, the data, the images, the
hosts) and the victim and data they name."""

from __future__ import annotations

import argparse

from pixeljax.cli import checks

CLI_IMAGES = 100  # images a command attacks unless --images says otherwise: all is opt-in
ALL = "all"


def join(args) -> tuple[int, int]:
    """Joins a multi-process run per the options of :func:`distributed_options` (before
    anything touches JAX's devices); returns ``(process_id, num_processes)``."""
    from pixeljax.runtime import distributed

    return distributed.initialize(getattr(args, "coordinator", None),
                                  getattr(args, "num_processes", None),
                                  getattr(args, "process_id", None),
                                  auto=not getattr(args, "no_distributed", True),
                                  timeout=getattr(args, "coordinator_timeout",
                                                  distributed.DEFAULT_TIMEOUT_S))


def n_images(args) -> int | None:
    """The images ``--images`` asks for: N, None for ``all``, :data:`CLI_IMAGES` when unset."""
    return CLI_IMAGES if args.images is None else None if args.images == ALL else args.images


def model_option(args) -> str:
    """The architecture the options name: MODEL, or ``predict:REF`` for ``--predict REF``."""
    from pixeljax.errors import PixeljaxError
    from pixeljax.models import user

    predict = getattr(args, "predict", None)
    if (args.model is None) == (predict is None):
        raise PixeljaxError("name the victim once: MODEL (a registered name or "
                            "module.path:factory) or --predict module.path:function")
    if predict is not None:
        if not user.is_reference(predict):
            raise PixeljaxError(f"--predict takes module.path:function, got {predict!r}")
        if args.checkpoint is not None:
            raise PixeljaxError("--predict names a function with its own weights: no "
                                "--checkpoint")
        return user.PREDICT + predict
    return args.model


def victim_and_data(args):
    """The victim and the data the options name, checked against each other, and the victim's
    record for ``config.json``: ``(loaded victim, image set, record)``."""
    from pixeljax.attack.validation import check_class_names, check_victim_fits
    from pixeljax.data import data_key, load_dataset
    from pixeljax.models import user
    from pixeljax.runs.victim_record import VictimRecord
    from pixeljax.victims import checkpoint_ref
    from pixeljax.victims.attacked import as_attacked
    from pixeljax.victims.checkpoint import load_victim
    from pixeljax.victims.defences import defence_name, parse_defences
    from pixeljax.victims.onnx import is_onnx

    architecture = model_option(args)
    given = {k: v for k in ("input_scale", "outputs", "layout") if (v := getattr(args, k, None))}
    defence = getattr(args, "defence", None)
    if defence is not None:
        parse_defences(defence)  # a bad name fails before anything loads
    victim = load_victim(architecture, args.checkpoint, **given)
    data = load_dataset(args.data, args.split)
    what = f"--data {args.data} ({data.source})"
    if defence is not None:
        given["defence"] = defence_name(parse_defences(defence, data.x.shape[1:]))
    victim = as_attacked(victim, data.x, defence=given.get("defence"), check=lambda v: (
        check_class_names(check_victim_fits(v, data.x.shape[1:], what), data, what)))
    if is_onnx(architecture):  # the file holds its weights: loadable from anywhere
        architecture = victim.metadata["architecture"]
    checkpoint = (user.NO_CHECKPOINT if user.is_predict(architecture) else
                  architecture if is_onnx(architecture) else
                  checkpoint_ref.of_path(args.checkpoint) if args.checkpoint else
                  checkpoint_ref.shipped(args.model))
    # weights_sha256: a resume, or an analysis, on other weights is refused
    record = VictimRecord(model=victim.name, architecture=architecture, checkpoint=checkpoint,
                          data=data_key(args.data), split=args.split,
                          weights_sha256=victim.weights_sha256, **given)
    return victim, data, record


def victim_options(p: argparse.ArgumentParser) -> None:
    """MODEL or ``--predict``, ``--out`` and :func:`user_model_options`, for every command that
    writes a results folder."""
    p.add_argument("model", nargs="?", help="a registered victim, module.path:factory or an "
                                            "ONNX file model.onnx")
    p.add_argument("--predict", metavar="MODULE:FUNCTION",
                   help="instead of MODEL: a plain predict(images) function with its own "
                        "weights")
    p.add_argument("--out", required=True, type=checks.path)
    p.add_argument("--defence", metavar="SPEC",
                   help="attack the victim behind an input defence: median<k>, gauss<k> (k "
                        "odd), bits<b> (1-7), noise<s>[x<n>] (Gaussian noise of std s, searched "
                        "by the mean over n draws, default 8, every result judged on 256 fresh "
                        "draws), joined by + and applied left to right, e.g. bits5+median3 "
                        "(recorded in config.json)")
    user_model_options(p)


def user_model_options(p: argparse.ArgumentParser) -> None:
    """How a model of the user's own takes its input and what it returns (instead of what it
    declares; see ``pixeljax.models.user``)."""
    p.add_argument("--input-scale", metavar="0-255|0-1|mean-std:M,M,M/S,S,S",
                   help="what a model of your own takes (default: what it declares, else "
                        "pixel values 0-255); pixeljax converts uint8 pixels to it")
    p.add_argument("--outputs", choices=("logits", "probabilities"),
                   help="what a model of your own returns (default: what it declares, else "
                        "logits; probabilities are also detected)")
    p.add_argument("--layout", choices=("nchw", "nhwc"),
                   help="an ONNX model's input layout (default: detected from its input shape "
                        "and the images' channel count)")


def distributed_options(p: argparse.ArgumentParser) -> None:
    """The options of a multi-process (multi-host) run; :func:`join` acts on them."""
    g = p.add_argument_group("many hosts (jax.distributed; auto-detected under Slurm srun "
                             "and on Cloud TPU pod slices)")
    g.add_argument("--coordinator", metavar="HOST:PORT",
                   help="address of process 0 (with --num-processes and --process-id)")
    g.add_argument("--num-processes", type=checks.positive_int, metavar="N",
                   help="processes in the run")
    g.add_argument("--process-id", type=checks.count, metavar="I", help="this process, in [0, N)")
    g.add_argument("--coordinator-timeout", type=checks.number(0, low_open=True), default=300,
                   metavar="SECONDS",
                   help="give up joining after this long (default 300)")
    g.add_argument("--no-distributed", action="store_true",
                   help="do not auto-detect a Slurm or TPU cluster: run as one process")


def data_options(p: argparse.ArgumentParser) -> None:
    """Which weights and images: ``--checkpoint``, ``--data``, ``--split``."""
    p.add_argument("--checkpoint", type=checks.path,
                   help="default: the shipped checkpoints/MODEL")
    p.add_argument("--data", default="sample", help="CIFAR-10 source (default: shipped sample)")
    p.add_argument("--split", default="test", choices=("train", "test"))


def images_option(text: str):
    """An argparse type: a count of images >= 1, or ``all``."""
    if text == ALL:
        return ALL
    try:
        return checks.positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or '{ALL}', got "
                                         f"{text!r}") from None


def selection_options(p: argparse.ArgumentParser, verb: str = "attack", *,
                      images: int = CLI_IMAGES, seed: str | None = None,
                      first: str | None = None) -> None:
    """Which images: ``--images`` (default ``images``), ``--first``, ``--seed`` (their helps
    ``first`` and ``seed``, default the spec's)."""
    from pixeljax._plumbing import settings
    from pixeljax.attack.spec import AttackSpec

    which = "the first N" if first else "a seeded sample unless --first"
    p.add_argument("--images", type=images_option, metavar=f"N|{ALL}",
                   help=f"{verb} N images (default {images}; '{ALL}': every image of "
                        f"--data), {which}")
    settings.add_options(p, AttackSpec, ("first", "seed"), helps={"seed": seed, "first": first})
