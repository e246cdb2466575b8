"""Shared test fixtures: ISA and thread-count parametrization, hypothesis profiles, assert_close."""

import atexit
import os
import shutil
import sysconfig
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from reference import assert_close  # noqa: F401  (re-exported: `from conftest import assert_close`)

import convcore  # a broken build must fail the run, never turn into skipped tests

if os.environ.get("CONVCORE_TEST_INSTALLED"):
    # CI tests the installed wheel: convcore must come from this environment's site-packages, not the checkout.
    _where = Path(convcore.__file__).resolve()
    if not _where.is_relative_to(Path(sysconfig.get_paths()["platlib"]).resolve()):
        raise RuntimeError(f"CONVCORE_TEST_INSTALLED is set but convcore was imported from {_where}, not from "
                           f"the installed wheel in {sysconfig.get_paths()['platlib']}")

ISAS = convcore.available_isas()

# The weights cache: an empty one of the test run's own (nothing of the user's cache is read, nothing is written to
# it), and no mirror: a test that downloads serves the file itself, from 127.0.0.1.
_HOME = Path(tempfile.mkdtemp(prefix="convcore-test-home-"))
atexit.register(shutil.rmtree, _HOME, True)
os.environ["CONVCORE_HOME"] = str(_HOME)
os.environ.pop("CONVCORE_WEIGHTS_MIRROR", None)

# The fixtures below are function-scoped; one value serves all of a test's hypothesis examples, which is intended.
_common = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("ci", max_examples=40, **_common)
settings.register_profile("dev", max_examples=300, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test with each ISA this build and CPU support ('scalar' = the reference C++ kernels)."""
    previous = convcore.get_isa()
    convcore.set_isa(request.param)
    yield request.param
    convcore.set_isa(previous)


@pytest.fixture(params=[1, 2])
def threads(request):
    """Run the test with 1 and 2 threads. Small ops normally stay on one thread; with 2 the grain is dropped so the
    test's small shapes run the parallel paths too."""
    previous = convcore.get_num_threads()
    convcore.set_num_threads(request.param)
    convcore._core.set_grain_scale(0.0 if request.param > 1 else 1.0)
    yield request.param
    convcore._core.set_grain_scale(1.0)
    convcore.set_num_threads(previous)
