"""``pixeljax train``, ``export``, ``accuracy`` and ``models``."""

from __future__ import annotations

import json
import sys

from pixeljax.cli import checks

_positive_int = checks.positive_int


def _nonempty(data, option: str, spec) -> None:
    from pixeljax.errors import PixeljaxError

    if len(data) == 0:
        raise PixeljaxError(f"{option} {spec}: {data.source} holds no images")


def _check_fits(model, data, option: str, spec) -> None:
    """The images have the size and channels ``model`` takes."""
    from pixeljax.attack.validation import check_image_shape, victim_image_shape

    check_image_shape(data.x.shape[1:], victim_image_shape(model),
                      f"{option} {spec} ({data.source})")


def _cmd_train(args) -> int:
    from flax import nnx

    from pixeljax.data import load_dataset
    from pixeljax.errors import PixeljaxError
    from pixeljax.models import create_model
    from pixeljax.training import export_victim, load_stages, train_stages
    from pixeljax.training.config import TrainConfig
    from pixeljax.victims.checkpoint import check_replaceable

    checks.writable_folder(args.workdir, "--workdir")
    if args.export:
        # Only a complete victim is replaced, and the folder must be writable: before training.
        checks.outside_package(args.export, "--export")
        checks.replaceable_folder(args.export, "--export", may_replace=check_replaceable)
    options = ("epochs", "batch_size", "learning_rate", "seed", "init_from",
               *TrainConfig.ADVERSARIAL)
    stages = load_stages(args.model)
    changes = {k: getattr(args, k) for k in options if getattr(args, k) is not None}
    if changes and len(stages) > 1:
        raise PixeljaxError(f"recipe {args.model} trains in {len(stages)} stages, so "
                            f"{', '.join('--' + k.replace('_', '-') for k in changes)} would "
                            f"not say which; write a recipe file with the stages you want and train "
                            f"FILE.py:SCHEDULE")
    stages = tuple(stage.replace(**changes) for stage in stages)
    config = stages[-1]
    given = [f"--{k.replace('_', '-')}" for k in TrainConfig.ADVERSARIAL[1:]
             if getattr(args, k) is not None]
    if given and not config.adversarial_fraction:
        raise PixeljaxError(f"{', '.join(given)} set(s) how adversarial images are found, but "
                            f"recipe {args.model} trains on none: give --adversarial-fraction F "
                            f"too")
    searched = [g for g in given if g != "--adversarial"]
    if searched and config.adversarial != "de":
        raise PixeljaxError(f"{', '.join(searched)} set(s) the DE search, but adversarial images "
                            f"are found at random ('{config.adversarial}'): drop them, or give "
                            f"--adversarial de")
    train_set = load_dataset(args.data, "train")
    test_set = load_dataset(args.data, "test")
    if args.limit:
        train_set = train_set.take(range(min(args.limit, len(train_set))))
    for data in (train_set, test_set):
        _nonempty(data, "--data", args.data)
    shape = nnx.eval_shape(lambda: create_model(config.model))  # no weights are made
    _check_fits(shape, train_set, "--data", args.data)
    def announce(k, n, stage, directory):
        if n > 1:
            print(f"stage {k} of {n}: {stage.epochs} epochs, peak learning rate "
                  f"{stage.learning_rate:g}, in {directory}", file=sys.stderr)

    result, config, workdir = train_stages(stages, train_set, test_set, args.workdir,
                                           progress=not args.quiet, on_stage=announce)
    print(f"{config.model}: test accuracy {result.test_accuracy:.4f} after {result.epochs} "
          f"epochs ({result.steps} steps, {result.training_seconds:.0f} s)")
    if args.export:
        meta = export_victim(result.model, args.export, architecture=config.model,
                             dtype=args.dtype,
                             test_set=test_set, training=_training_info(
                                 config, train_set.source, result.steps, result.epochs,
                                 result.training_seconds, result.history, workdir))
        print(f"exported to {args.export} (test accuracy {meta['test_accuracy']:.4f})")
    return 0


def _training_info(config, train_source, steps, epochs_done, seconds, history, workdir) -> dict:
    from pixeljax.training import initial

    info = {"train_data": train_source, "epochs": epochs_done, "steps": steps,
            "training_seconds": round(seconds, 1), "recipe": config.to_dict(),
            "history": history}
    lineage = initial.recorded(workdir)
    if lineage is not None:  # a fine-tune: the run its starting weights came from
        info["initialised_from"] = lineage
    return info


EXPORT_DEFAULT = "victim"  # export without --out: WORKDIR/victim


def _cmd_export(args) -> int:
    from pixeljax.data import load_dataset
    from pixeljax.training import export_victim
    from pixeljax.training.workdir import restore_model, training_data
    from pixeljax.victims.checkpoint import check_replaceable

    # Without --out the victim goes into the work dir: a shipped victim is replaced only when
    # --out names it, and never inside the installed package.
    out = args.out or args.workdir / EXPORT_DEFAULT
    checks.outside_package(out, "--out")
    checks.replaceable_folder(out, "--out" if args.out else "--out (default: WORKDIR/victim)",
                              may_replace=check_replaceable)
    model, config, step, history, seconds = restore_model(args.workdir)
    source = training_data(args.workdir).get("train_data", "not recorded")
    test_set = load_dataset(args.data, "test")
    _nonempty(test_set, "--data", args.data)
    _check_fits(model, test_set, "--data", args.data)
    epochs_done = history[-1]["epoch"] if history else 0
    meta = export_victim(model, out, architecture=config.model, test_set=test_set,
                         dtype=args.dtype,
                         training=_training_info(config, source, step, epochs_done,
                                                 seconds, history, args.workdir))
    print(json.dumps({k: meta[k] for k in ("architecture", "parameter_count", "epochs",
                                           "test_accuracy", "sample_accuracy")}))
    print(f"exported step {step} of {args.workdir} to {out}")
    return 0


def _cmd_accuracy(args) -> int:
    from pixeljax.attack.validation import check_victim_fits
    from pixeljax.data import load_dataset
    from pixeljax.victims.accuracy import accuracy
    from pixeljax.victims.checkpoint import load_victim, shipped_checkpoint
    from pixeljax.victims.onnx import fitted, is_onnx

    given = {k: v for k in ("input_scale", "outputs", "layout") if (v := getattr(args, k))}
    victim = load_victim(args.model, args.checkpoint, **given)
    data = load_dataset(args.data, args.split)
    _nonempty(data, "--data", args.data)  # the accuracy of no images is undefined
    if is_onnx(args.model):  # its layout and image size, from the data
        victim = fitted(victim, data.x.shape[1:])
    check_victim_fits(victim, data.x.shape[1:], f"--data {args.data} ({data.source})")
    if args.limit:
        data = data.take(range(min(args.limit, len(data))))
    acc = accuracy(victim.apply, victim.params, data.x, data.y)
    result = {"model": args.model,
              "checkpoint": str(args.checkpoint or (args.model if is_onnx(args.model) else
                                                    shipped_checkpoint(args.model))),
              "n_images": len(data), "accuracy": acc}
    print(json.dumps(result) if args.json else
          f"{args.model}: accuracy {acc:.4f} on {len(data)} images of {data.source}")
    return 0


def _cmd_models(args) -> int:
    from pixeljax.models import model_names
    print("\n".join(model_names()))
    return 0


def _dtype_option(p) -> None:
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                   help="how the exported weights are stored (read back as float32); "
                        "bfloat16/float16 halve the size but round the weights, so the default "
                        "float32 keeps the trained network exact (batch-norm statistics stay "
                        "float32 always)")


def register(sub) -> None:
    from pixeljax._plumbing import settings
    from pixeljax.cli.options import user_model_options
    from pixeljax.training.config import TrainConfig

    p = sub.add_parser("train", help="train a victim with its recipe in train/")
    p.add_argument("model", help="recipe name (train/FAMILY.py's full recipe FAMILY, or its "
                                 "schedule FAMILY_NAME, whose stages, when there are several, "
                                 "train in order in WORKDIR/stage-K) or path to a recipe .py "
                                 "file (FILE.py:NAME for one of its SCHEDULES)")
    p.add_argument("--data", required=True, help="CIFAR-10 source (see 'pixeljax.data')")
    p.add_argument("--workdir", required=True, type=checks.path)
    p.add_argument("--export", type=checks.path,
                   help="write the final victim here (e.g. checkpoints/NAME)")
    _dtype_option(p)
    recipe = "the recipe's"  # a train option left unset keeps the recipe's value
    settings.add_options(p, TrainConfig, ("epochs", "batch_size", "learning_rate", "seed"),
                         shown=dict.fromkeys(("epochs", "batch_size", "learning_rate", "seed"),
                                             recipe), defaults=TrainConfig(model="recipe"))
    p.add_argument("--init-from", metavar="CHECKPOINT",
                   help="fine-tune: start from these weights (a victim folder, 'shipped:NAME' "
                        "or a training work dir) instead of a random initialisation")
    p.add_argument("--limit", type=_positive_int,
                   help="train on the first N training images only")
    settings.add_options(p, TrainConfig, TrainConfig.ADVERSARIAL,
                         shown={"adversarial_fraction": recipe}, defaults=TrainConfig(model="recipe"))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("export", help="export a training run's newest checkpoint as a victim")
    p.add_argument("--workdir", required=True, type=checks.path)
    p.add_argument("--data", required=True, help="test data for the recorded accuracy")
    p.add_argument("--out", type=checks.path,
                   help="the victim folder (default: WORKDIR/victim; a shipped victim, e.g. "
                        "checkpoints/MODEL in a source checkout, is replaced only when named "
                        "here)")
    _dtype_option(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("accuracy", help="clean accuracy of a victim")
    p.add_argument("model", help="a registered victim, module.path:factory or an ONNX file "
                                 "model.onnx")
    user_model_options(p)
    p.add_argument("--checkpoint", type=checks.path,
                   help="default: the shipped checkpoints/MODEL")
    p.add_argument("--data", default="sample")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--limit", type=_positive_int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_accuracy)

    p = sub.add_parser("models", help="list the registered architectures")
    p.set_defaults(func=_cmd_models)
