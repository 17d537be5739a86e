"""Shared test settings: the backends to run on and hypothesis profiles.

Every test that takes the ``backend_name`` argument runs once per backend minigan
knows (``minigan.backend.names()``), inside ``backend.using(name)``. A backend that
cannot run here is skipped with its reason (numba not installed, no CUDA GPU); the
GPU backend's runs are marked ``gpu``, so ``pytest -m gpu`` runs exactly them.
"""

import os

from minigan import cpu

# The BLAS kernels the command-line entry points choose, before NumPy loads: the tests
# that resume a `python -m minigan.train` child's run in this process compare bits.
cpu.choose_openblas_kernels()

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from minigan import backend  # noqa: E402

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


def backend_params(names=None):
    """pytest params for backends: GPU ones marked ``gpu``, unusable ones skipped."""
    params = []
    for name in names or backend.names():
        marks = [pytest.mark.gpu] if backend.BACKENDS[name].gpu else []
        reason = backend.unusable_reason(name)
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=backend_params())
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
