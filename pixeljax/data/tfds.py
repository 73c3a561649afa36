"""Image classification data through tensorflow-datasets.

``tfds`` loads the ``cifar10`` builder from the default tfds data dir, downloading and preparing
it first when it is not there yet. ``tfds:DATA_DIR`` loads CIFAR-10 offline from a data dir
where it is prepared (``tfds build cifar10 --data_dir DATA_DIR --file_format array_record``, or
any earlier download) and never touches the network. ``tfds:NAME[:SPLIT][@DATA_DIR]`` loads any
other data set with ``image`` and ``label`` features (``cifar100``, ``svhn_cropped``, ``mnist``,
...) where it was prepared, with its class names. The import is lazy: tensorflow-datasets is
only needed by users of this source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixeljax.data.arrays import ImageSet, make_image_set
from pixeljax.errors import DataError

_BUILD = "tfds build {name} --data_dir {dir} --file_format array_record"


def load_tfds(split: str, data_dir: str | None = None, *, name: str = "cifar10",
              download: bool | None = None) -> ImageSet:
    """Loads ``split`` of the tfds data set ``name`` (images under ``image``, classes under
    ``label``; the class names come with it).

    Args:
      split: a split of the data set (``"train"``, ``"test"``, ...).
      data_dir: a tfds data dir; None means the default one.
      name: the tfds name (default ``cifar10``).
      download: download and prepare the data set when it is not prepared yet. Defaults to True
        for CIFAR-10 without a ``data_dir`` and False otherwise: another data set is only read
        where it was prepared (preparing one can take long: that is the user's call).

    Raises:
      DataError: tensorflow-datasets is missing, the name is unknown, the data set is not
        prepared (and may not be downloaded), or it cannot be read.
    """
    default = name == "cifar10" and data_dir is None
    download = default if download is None else download
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser())
        if not download and not Path(data_dir).is_dir():
            raise DataError(f"tfds data dir {data_dir} does not exist; expected a dir where "
                            f"{name} is prepared ({_BUILD.format(name=name, dir=data_dir)})")
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(f"the 'tfds' data source needs tensorflow-datasets ({e})") from None
    where = data_dir or "the default tfds data dir"
    build = _BUILD.format(name=name, dir=data_dir or "DIR")
    try:
        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError:
            raise DataError(f"tfds knows no data set {name!r} (see 'tfds.list_builders()')") \
                from None
        if not builder.is_prepared():
            if not download:
                raise DataError(f"{name} is not prepared in {where}; prepare it once with "
                                f"'{build}' (then --data tfds:{name}:{split}@DIR)")
            # Random-access reading (as_data_source) needs array_record, not tfrecord.
            builder.download_and_prepare(file_format="array_record")
        splits = list(builder.info.splits)
        if split not in splits:
            raise DataError(f"{name} has no split {split!r}; it has {', '.join(splits)}")
        source = builder.as_data_source(split=split)
        records = [source[i] for i in range(len(source))]
        names = builder.info.features["label"].names
    except DataError:
        raise
    except Exception as e:  # tfds raises many kinds: missing data, no network, bad dir
        raise DataError(f"tensorflow-datasets could not load {name}/{split} from {where}: "
                        f"{type(e).__name__}: {e}") from None
    x = np.stack([r["image"] for r in records]).astype(np.uint8)
    y = np.asarray([r["label"] for r in records], np.int64)
    return make_image_set(x, y, source=f"tfds {name} ({split})", class_names=tuple(names))


def parse(rest: str | None, split: str) -> dict:
    """The arguments of :func:`load_tfds` for ``--data tfds:REST`` (None: plain ``tfds``):
    ``DIR`` (CIFAR-10 from a data dir, a path), or ``NAME[:SPLIT][@DIR]``."""
    if rest is None:  # plain "tfds": CIFAR-10, downloaded on first use
        return {"split": split}
    if not rest:
        raise DataError("--data tfds: names no data set; give tfds (CIFAR-10), tfds:DATA_DIR "
                        "or tfds:NAME[:SPLIT][@DATA_DIR]")
    if "/" in rest.split("@")[0] or Path(rest).expanduser().is_dir():
        return {"split": split, "data_dir": rest}
    head, _, data_dir = rest.partition("@")
    name, _, own_split = head.partition(":")
    if not name:
        raise DataError(f"--data tfds:{rest} names no data set before "
                        f"{':' if own_split else '@'}; give tfds:NAME[:SPLIT][@DATA_DIR]")
    return {"split": own_split or split, "name": name, "data_dir": data_dir or None}
