"""Datasets as grain data sources: splitting, array and HDF5 sources, PyDataset, time series,
folders of images, texts and audio.

Names are imported on first use: ``from jkutils.data import ArraySource`` does not import
grain or h5py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jkutils._lazy import lazy_attributes

_EXPORTS: dict[str, str] = {
    "audio_dataset_from_directory": "jkutils.data.audio_dataset",
    "image_dataset_from_directory": "jkutils.data.image_dataset",
    "text_dataset_from_directory": "jkutils.data.text_dataset",
    "DirectoryDataset": "jkutils.data.directory",
    "pack_x_y_sample_weight": "jkutils.data.packing",
    "unpack_x_y_sample_weight": "jkutils.data.packing",
    "PyDataset": "jkutils.data.py_dataset",
    "Sequence": "jkutils.data.py_dataset",
    "to_grain": "jkutils.data.py_dataset",
    "ArraySource": "jkutils.data.sources",
    "HDF5Matrix": "jkutils.data.sources",
    "process_shard": "jkutils.data.split",
    "split_dataset": "jkutils.data.split",
    "timeseries_dataset_from_array": "jkutils.data.timeseries",
    "WorkerDataset": "jkutils.data.worker_dataset",
    "stop_idle_workers": "jkutils.data.worker_dataset",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS)

if TYPE_CHECKING:
    from jkutils.data.audio_dataset import (
        audio_dataset_from_directory as audio_dataset_from_directory,
    )
    from jkutils.data.directory import DirectoryDataset as DirectoryDataset
    from jkutils.data.image_dataset import (
        image_dataset_from_directory as image_dataset_from_directory,
    )
    from jkutils.data.packing import pack_x_y_sample_weight as pack_x_y_sample_weight
    from jkutils.data.packing import unpack_x_y_sample_weight as unpack_x_y_sample_weight
    from jkutils.data.py_dataset import PyDataset as PyDataset
    from jkutils.data.py_dataset import Sequence as Sequence
    from jkutils.data.py_dataset import to_grain as to_grain
    from jkutils.data.sources import ArraySource as ArraySource
    from jkutils.data.sources import HDF5Matrix as HDF5Matrix
    from jkutils.data.split import process_shard as process_shard
    from jkutils.data.split import split_dataset as split_dataset
    from jkutils.data.text_dataset import text_dataset_from_directory as text_dataset_from_directory
    from jkutils.data.timeseries import (
        timeseries_dataset_from_array as timeseries_dataset_from_array,
    )
    from jkutils.data.worker_dataset import WorkerDataset as WorkerDataset
    from jkutils.data.worker_dataset import stop_idle_workers as stop_idle_workers
