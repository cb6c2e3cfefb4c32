"""Test-wide set-up: 8 forced host CPU devices and absl flags marked parsed.

Both must happen before JAX initialises a backend and before grain starts a worker,
so they live here, in the first module pytest imports.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
from absl import flags  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

if not flags.FLAGS.is_parsed():
    # grain's worker processes read absl flags; outside absl.app.run nobody parses them.
    flags.FLAGS.mark_as_parsed()
