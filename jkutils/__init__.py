"""jkutils: ``keras.utils`` rebuilt for JAX.

Every public name is importable as ``jkutils.NAME``; the data helpers also as
``jkutils.data.NAME``. Names are imported on first use, so ``from jkutils import get_file``
costs only what ``get_file`` itself needs (no JAX, grain or h5py).

Example:
    >>> import jkutils
    >>> jkutils.to_categorical([0, 2], num_classes=3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jkutils._lazy import lazy_attributes

__version__ = "0.1.0"

# Public name -> the module that defines it; each is imported the first time it is asked for.
_EXPORTS: dict[str, str] = {
    "audio_dataset_from_directory": "jkutils.data.audio_dataset",
    "image_dataset_from_directory": "jkutils.data.image_dataset",
    "text_dataset_from_directory": "jkutils.data.text_dataset",
    "array_to_img": "jkutils.image",
    "img_to_array": "jkutils.image",
    "load_img": "jkutils.image",
    "save_img": "jkutils.image",
    "smart_resize": "jkutils.image",
    "pack_x_y_sample_weight": "jkutils.data.packing",
    "unpack_x_y_sample_weight": "jkutils.data.packing",
    "PyDataset": "jkutils.data.py_dataset",
    "Sequence": "jkutils.data.py_dataset",
    "ArraySource": "jkutils.data.sources",
    "HDF5Matrix": "jkutils.data.sources",
    "split_dataset": "jkutils.data.split",
    "timeseries_dataset_from_array": "jkutils.data.timeseries",
    "get_file": "jkutils.files",
    "normalize": "jkutils.numerical",
    "to_categorical": "jkutils.numerical",
    "DATA_AXIS": "jkutils.parallel",
    "data_parallel": "jkutils.parallel",
    "data_parallel_train_step": "jkutils.parallel",
    "make_data_mesh": "jkutils.parallel",
    "multi_gpu_model": "jkutils.parallel",
    "replicate": "jkutils.parallel",
    "shard_batch": "jkutils.parallel",
    "Progbar": "jkutils.progbar",
    "track": "jkutils.progbar",
    "key_tree": "jkutils.random",
    "seed_from_key": "jkutils.random",
    "set_random_seed": "jkutils.random",
    "CustomObjectScope": "jkutils.registry",
    "custom_object_scope": "jkutils.registry",
    "deserialize": "jkutils.registry",
    "deserialize_keras_object": "jkutils.registry",
    "get": "jkutils.registry",
    "get_custom_objects": "jkutils.registry",
    "get_registered_name": "jkutils.registry",
    "get_registered_object": "jkutils.registry",
    "register_keras_serializable": "jkutils.registry",
    "register_serializable": "jkutils.registry",
    "serialize": "jkutils.registry",
    "serialize_keras_object": "jkutils.registry",
    "pad_sequences": "jkutils.sequence",
    "model_to_dot": "jkutils.visualize.graph",
    "plot_model": "jkutils.visualize.graph",
    "print_summary": "jkutils.visualize.summary",
}

# Subpackages and modules reachable as attributes (``jkutils.progbar.Progbar``).
_SUBMODULES = frozenset(
    {
        "data",
        "files",
        "image",
        "numerical",
        "parallel",
        "progbar",
        "random",
        "registry",
        "sequence",
        "visualize",
    }
)

__all__ = sorted([*_EXPORTS, *_SUBMODULES])

__getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS, _SUBMODULES)

if TYPE_CHECKING:
    from jkutils import data as data
    from jkutils import files as files
    from jkutils import image as image
    from jkutils import numerical as numerical
    from jkutils import parallel as parallel
    from jkutils import progbar as progbar
    from jkutils import random as random
    from jkutils import registry as registry
    from jkutils import sequence as sequence
    from jkutils import visualize as visualize
    from jkutils.data.audio_dataset import (
        audio_dataset_from_directory as audio_dataset_from_directory,
    )
    from jkutils.data.image_dataset import (
        image_dataset_from_directory as image_dataset_from_directory,
    )
    from jkutils.data.packing import pack_x_y_sample_weight as pack_x_y_sample_weight
    from jkutils.data.packing import unpack_x_y_sample_weight as unpack_x_y_sample_weight
    from jkutils.data.py_dataset import PyDataset as PyDataset
    from jkutils.data.py_dataset import Sequence as Sequence
    from jkutils.data.sources import ArraySource as ArraySource
    from jkutils.data.sources import HDF5Matrix as HDF5Matrix
    from jkutils.data.split import split_dataset as split_dataset
    from jkutils.data.text_dataset import text_dataset_from_directory as text_dataset_from_directory
    from jkutils.data.timeseries import (
        timeseries_dataset_from_array as timeseries_dataset_from_array,
    )
    from jkutils.files import get_file as get_file
    from jkutils.image import array_to_img as array_to_img
    from jkutils.image import img_to_array as img_to_array
    from jkutils.image import load_img as load_img
    from jkutils.image import save_img as save_img
    from jkutils.image import smart_resize as smart_resize
    from jkutils.numerical import normalize as normalize
    from jkutils.numerical import to_categorical as to_categorical
    from jkutils.parallel import DATA_AXIS as DATA_AXIS
    from jkutils.parallel import data_parallel as data_parallel
    from jkutils.parallel import data_parallel_train_step as data_parallel_train_step
    from jkutils.parallel import make_data_mesh as make_data_mesh
    from jkutils.parallel import multi_gpu_model as multi_gpu_model
    from jkutils.parallel import replicate as replicate
    from jkutils.parallel import shard_batch as shard_batch
    from jkutils.progbar import Progbar as Progbar
    from jkutils.progbar import track as track
    from jkutils.random import key_tree as key_tree
    from jkutils.random import seed_from_key as seed_from_key
    from jkutils.random import set_random_seed as set_random_seed
    from jkutils.registry import CustomObjectScope as CustomObjectScope
    from jkutils.registry import custom_object_scope as custom_object_scope
    from jkutils.registry import deserialize as deserialize
    from jkutils.registry import deserialize_keras_object as deserialize_keras_object
    from jkutils.registry import get as get
    from jkutils.registry import get_custom_objects as get_custom_objects
    from jkutils.registry import get_registered_name as get_registered_name
    from jkutils.registry import get_registered_object as get_registered_object
    from jkutils.registry import register_keras_serializable as register_keras_serializable
    from jkutils.registry import register_serializable as register_serializable
    from jkutils.registry import serialize as serialize
    from jkutils.registry import serialize_keras_object as serialize_keras_object
    from jkutils.sequence import pad_sequences as pad_sequences
    from jkutils.visualize.graph import model_to_dot as model_to_dot
    from jkutils.visualize.graph import plot_model as plot_model
    from jkutils.visualize.summary import print_summary as print_summary
