"""CIFAR-10 through tensorflow-datasets.

``tfds`` loads the ``cifar10`` builder from the default tfds data dir, downloading and preparing
it first when it is not there yet. ``tfds:DATA_DIR`` loads offline from a data set already
prepared in ``DATA_DIR`` (``tfds build cifar10 --data_dir DATA_DIR --file_format array_record``,
or any earlier download) and never touches the network. The import is lazy: tensorflow-datasets
is only needed by users of this source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixeljax.data.arrays import ImageSet, make_image_set
from pixeljax.errors import DataError

_BUILD = "tfds build cifar10 --data_dir {} --file_format array_record"


def load_tfds(split: str, data_dir: str | None = None, *,
              download: bool | None = None) -> ImageSet:
    """Loads CIFAR-10 ``split`` with tensorflow-datasets.

    Args:
      split: ``"train"`` or ``"test"``.
      data_dir: a tfds data dir; None means the default one.
      download: download and prepare the data set when it is not prepared yet. Defaults to True
        without a ``data_dir`` and False with one, so a given dir loads offline.

    Raises:
      DataError: tensorflow-datasets is missing, or the data set is not prepared (and may not be
        downloaded), or it cannot be read.
    """
    download = data_dir is None if download is None else download
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser())
        if not download and not Path(data_dir).is_dir():
            raise DataError(f"tfds data dir {data_dir} does not exist; expected a dir where "
                            f"cifar10 is prepared ({_BUILD.format(data_dir)}), or 'tfds' "
                            f"alone to download it")
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(f"the 'tfds' data source needs tensorflow-datasets ({e})") from None
    where = data_dir or "the default tfds data dir"
    try:
        builder = tfds.builder("cifar10", data_dir=data_dir)
        if not builder.is_prepared():
            if not download:
                raise DataError(f"cifar10 is not prepared in {where}; prepare it with "
                                f"'{_BUILD.format(data_dir or 'DIR')}', or use 'tfds' alone "
                                f"to download it")
            # Random-access reading (as_data_source) needs array_record, not tfrecord.
            builder.download_and_prepare(file_format="array_record")
        source = builder.as_data_source(split=split)
        records = [source[i] for i in range(len(source))]
    except DataError:
        raise
    except Exception as e:  # tfds raises many kinds: missing data, no network, bad dir
        raise DataError(f"tensorflow-datasets could not load cifar10/{split} from {where}: "
                        f"{type(e).__name__}: {e}") from None
    x = np.stack([r["image"] for r in records]).astype(np.uint8)
    y = np.asarray([r["label"] for r in records], np.int64)
    return make_image_set(x, y, source=f"tfds cifar10 ({split})")
