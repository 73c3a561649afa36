"""``pixeljax train``, ``export``, ``accuracy`` and ``models``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _cmd_train(args) -> int:
    from pixeljax.data import load_dataset
    from pixeljax.training import export_victim, load_recipe, train

    config = load_recipe(args.model).replace(epochs=args.epochs, batch_size=args.batch_size,
                                             learning_rate=args.learning_rate, seed=args.seed)
    train_set = load_dataset(args.data, "train")
    test_set = load_dataset(args.data, "test")
    if args.limit:
        train_set = train_set.take(range(min(args.limit, len(train_set))))
    result = train(config, train_set, test_set, args.workdir, progress=not args.quiet)
    print(f"{config.model}: test accuracy {result.test_accuracy:.4f} after {result.epochs} "
          f"epochs ({result.steps} steps, {result.training_seconds:.0f} s)")
    if args.export:
        meta = export_victim(result.model, args.export, architecture=config.model,
                             test_set=test_set, training=_training_info(
                                 config, train_set.source, result.steps, result.epochs,
                                 result.training_seconds, result.history))
        print(f"exported to {args.export} (test accuracy {meta['test_accuracy']:.4f})")
    return 0


def _training_info(config, train_source, steps, epochs_done, seconds, history) -> dict:
    return {"train_data": train_source, "epochs": epochs_done, "steps": steps,
            "training_seconds": round(seconds, 1), "recipe": config.to_dict(),
            "history": history}


def _cmd_export(args) -> int:
    from pixeljax.checkpoint import shipped_checkpoint
    from pixeljax.data import load_dataset
    from pixeljax.training import export_victim
    from pixeljax.training.loop import restore_model, training_data

    model, config, step, history, seconds = restore_model(args.workdir)
    source = training_data(args.workdir).get("train_data", "not recorded")
    test_set = load_dataset(args.data, "test")
    epochs_done = history[-1]["epoch"] if history else 0
    out = args.out or shipped_checkpoint(config.model)
    meta = export_victim(model, out, architecture=config.model, test_set=test_set,
                         training=_training_info(config, source, step, epochs_done,
                                                 seconds, history))
    print(json.dumps({k: meta[k] for k in ("architecture", "parameter_count", "epochs",
                                           "test_accuracy", "sample_accuracy")}))
    print(f"exported step {step} of {args.workdir} to {out}")
    return 0


def _cmd_accuracy(args) -> int:
    from pixeljax.accuracy import accuracy
    from pixeljax.checkpoint import load_victim, shipped_checkpoint
    from pixeljax.data import load_dataset

    victim = load_victim(args.model, args.checkpoint)
    data = load_dataset(args.data, args.split)
    if args.limit:
        data = data.take(range(min(args.limit, len(data))))
    acc = accuracy(victim.apply, victim.params, data.x, data.y)
    result = {"model": args.model,
              "checkpoint": str(args.checkpoint or shipped_checkpoint(args.model)),
              "n_images": len(data), "accuracy": acc}
    print(json.dumps(result) if args.json else
          f"{args.model}: accuracy {acc:.4f} on {len(data)} images of {data.source}")
    return 0


def _cmd_models(args) -> int:
    from pixeljax.models import model_names
    print("\n".join(model_names()))
    return 0


def register(sub) -> None:

    p = sub.add_parser("train", help="train a victim with its recipe in train/")
    p.add_argument("model", help="recipe name (train/NAME.py) or path to a recipe .py file")
    p.add_argument("--data", required=True, help="CIFAR-10 source (see 'pixeljax.data')")
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("--export", type=Path,
                   help="write the final victim here (e.g. checkpoints/NAME)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--limit", type=_positive_int,
                   help="train on the first N training images only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("export", help="export a training run's newest checkpoint as a victim")
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("--data", required=True, help="test data for the recorded accuracy")
    p.add_argument("--out", type=Path, help="default: checkpoints/MODEL")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("accuracy", help="clean accuracy of a victim")
    p.add_argument("model")
    p.add_argument("--checkpoint", type=Path, help="default: the shipped checkpoints/MODEL")
    p.add_argument("--data", default="sample")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--limit", type=_positive_int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_accuracy)

    p = sub.add_parser("models", help="list the registered architectures")
    p.set_defaults(func=_cmd_models)
