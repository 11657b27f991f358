"""Test configuration: 8 simulated CPU devices and JAX's strictest promotion rules.

Strict dtype promotion makes any hyperparameter that would silently promote an update fail
loudly; rank promotion "raise" does the same for accidental broadcasting.
"""

import os
import sys

import jax

sys.path.insert(0, os.path.dirname(__file__))

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
