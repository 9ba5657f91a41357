"""Datasets (IDX, CIFAR, STL-10, image folders, arrays), the uint8 memmap cache, and batch loaders."""
from selfsup.data.batch import Batch
from selfsup.data.dataset import ImageDataset, from_arrays
from selfsup.data.datasets import dataset_names, load_dataset, prepare
from selfsup.data.loader import BatchLoader, iterate

__all__ = ["Batch", "BatchLoader", "ImageDataset", "dataset_names", "from_arrays", "iterate", "load_dataset", "prepare"]
