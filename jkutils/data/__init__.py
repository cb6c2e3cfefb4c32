"""Datasets as grain data sources: splitting, array and HDF5 sources, PyDataset, time series."""

from jkutils.data.packing import pack_x_y_sample_weight as pack_x_y_sample_weight
from jkutils.data.packing import unpack_x_y_sample_weight as unpack_x_y_sample_weight
from jkutils.data.py_dataset import PyDataset as PyDataset
from jkutils.data.py_dataset import Sequence as Sequence
from jkutils.data.py_dataset import to_grain as to_grain
from jkutils.data.sources import ArraySource as ArraySource
from jkutils.data.sources import HDF5Matrix as HDF5Matrix
from jkutils.data.split import process_shard as process_shard
from jkutils.data.split import split_dataset as split_dataset
from jkutils.data.timeseries import timeseries_dataset_from_array as timeseries_dataset_from_array
