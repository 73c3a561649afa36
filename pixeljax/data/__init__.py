"""CIFAR-10 from tensorflow-datasets, the official release, .npz files or the shipped sample."""

from pixeljax.data.arrays import CIFAR10_CLASSES, ImageSet, make_image_set
from pixeljax.data.sources import SAMPLE, data_key, load_dataset, load_sample, sample_path

__all__ = ["CIFAR10_CLASSES", "ImageSet", "SAMPLE", "data_key", "load_dataset", "load_sample",
           "make_image_set", "sample_path"]
