"""Datasets as grain data sources: splitting, array and HDF5 sources, PyDataset, time series."""

from jkutils.data.packing import pack_x_y_sample_weight as pack_x_y_sample_weight
from jkutils.data.packing import unpack_x_y_sample_weight as unpack_x_y_sample_weight
