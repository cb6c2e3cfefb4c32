"""A file loader that reports on the process reading it, for the worker-process tests.

It imports neither JAX nor grain, so a worker process that unpickles it shows what the worker
imported on its own. Element of a file: ``[pid, jax imported, grain imported, a main script
run, the file's number]``; files named in ``stall_on`` make the loader write its pid to
``marker`` and sleep, files named in ``fail_on`` raise.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from jkutils.data._file_loaders import FileLoader


class ProbeLoader(FileLoader):
    def __init__(self, stall_on=(), fail_on=(), marker=""):
        self.stall_on, self.fail_on, self.marker = set(stall_on), set(fail_on), marker

    def load(self, path):
        name = os.path.basename(path)
        if name in self.fail_on:
            raise ValueError(f"Cannot read the probe file {path!r}")
        if name in self.stall_on:
            with open(self.marker + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(self.marker + ".tmp", self.marker)
            time.sleep(600)
        ran_a_script = getattr(sys.modules["__main__"], "__file__", None) is not None
        flags = ["jax" in sys.modules, "grain" in sys.modules, ran_a_script]
        return np.array([os.getpid(), *flags, int(name.split(".")[0])], np.int64)

    def stack(self, items):
        return np.stack(items)
