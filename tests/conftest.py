"""Test configuration: 8 simulated CPU devices and JAX's strictest promotion rules.

Strict dtype promotion makes any hyperparameter that would silently promote an update fail
loudly; rank promotion "raise" does the same for accidental broadcasting.

``PJRT_NPROC``: XLA's CPU client runs each simulated device of a collective on a thread of a
pool sized max(cores, devices). On a 2-core machine that is exactly 8 threads for 8 devices, and
a collective whose participants cannot all get a thread at once (another computation holds one)
deadlocks in XLA's rendezvous. A larger pool avoids it. Child processes (notebook kernels,
multi-process tests) inherit the setting.
"""

import atexit
import os
import shutil
import sys
import tempfile

os.environ.setdefault("PJRT_NPROC", "32")

import jax  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# One persistent compilation cache per test run, shared by the pytest-xdist workers. About a
# third of the programs the suite compiles are identical to one compiled before in the run (an
# op on the same shapes dispatched eagerly in another worker, the same step of an entry in two
# tables), and reading one back costs less than compiling it again: 9% less CPU over the five
# largest test files. The first process to load this file (pytest itself, before it starts the
# workers) makes the directory and removes it when it exits; the workers inherit its name.
_CACHE = "GRADXFORM_TEST_COMPILATION_CACHE"
if _CACHE not in os.environ:
    os.environ[_CACHE] = tempfile.mkdtemp(prefix="gradxform-tests-xla-")
    atexit.register(shutil.rmtree, os.environ[_CACHE], ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# Hypothesis profiles (tests/test_properties.py): "fast" by default, deterministic for CI;
# "long" with --hypothesis-profile=long or GRADXFORM_HYPOTHESIS_PROFILE=long.
from hypothesis import HealthCheck, Phase, settings  # noqa: E402

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.differing_executors]
settings.register_profile(  # explicit examples, plus what a test asks for (see there)
    "fast", max_examples=1, derandomize=True, deadline=None, suppress_health_check=_QUIET,
    phases=[Phase.explicit], print_blob=True)
settings.register_profile(
    "long", max_examples=40, deadline=None, suppress_health_check=_QUIET, print_blob=True)
settings.load_profile(os.environ.get("GRADXFORM_HYPOTHESIS_PROFILE", "fast"))
