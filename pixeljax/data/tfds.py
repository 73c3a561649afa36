"""CIFAR-10 through tensorflow-datasets.

``tfds`` (or ``tfds:DATA_DIR``) loads the ``cifar10`` builder. Once the data set is prepared in
``DATA_DIR`` (``tfds build cifar10 --data_dir DATA_DIR``, or any earlier download), it loads
offline. The import is lazy: tensorflow-datasets is only needed by users of this source.
"""

from __future__ import annotations

import numpy as np

from pixeljax.data.arrays import ImageSet, make_image_set
from pixeljax.errors import DataError


def load_tfds(split: str, data_dir: str | None = None, *, download: bool = True) -> ImageSet:
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(f"the 'tfds' data source needs tensorflow-datasets ({e})") from None
    try:
        builder = tfds.builder("cifar10", data_dir=data_dir)
        if download:
            builder.download_and_prepare()
        source = builder.as_data_source(split=split)
        records = [source[i] for i in range(len(source))]
    except Exception as e:  # tfds raises many kinds: missing data, no network, bad dir
        where = data_dir or "the default tfds data dir"
        raise DataError(f"tensorflow-datasets could not load cifar10/{split} from {where}: "
                        f"{type(e).__name__}: {e}") from None
    x = np.stack([r["image"] for r in records]).astype(np.uint8)
    y = np.asarray([r["label"] for r in records], np.int64)
    return make_image_set(x, y, source=f"tfds cifar10 ({split})")
