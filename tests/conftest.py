"""Shared test settings: the backends to run on and hypothesis profiles.

Every test that takes the ``backend_name`` argument runs once per available
backend (``minigan.backend.available()``), inside ``backend.using(name)``.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

from minigan import backend

settings.register_profile(
    "default",
    max_examples=int(os.environ.get("MINIGAN_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # the backend is meant to hold for all examples
    ],
)
settings.load_profile("default")


@pytest.fixture(params=backend.available())
def backend_name(request):
    """The name of each backend in turn; the test body runs with it current."""
    with backend.using(request.param):
        yield request.param


@pytest.fixture(scope="session", autouse=True)
def warm_compiled_kernels():
    """Compile (or load from Numba's disk cache) every kernel once, up front, so no
    single test carries the JIT cost."""
    if "numba" in backend.available():
        from minigan.backend_numba import NumbaBackend

        NumbaBackend().warm_up()
