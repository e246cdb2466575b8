"""What every fuzz target shares: atheris set-up, and the contract each target checks.

The targets import without atheris (tests/hardening runs their `test_one_input` on every input a campaign ever
found, fuzz/regressions/<target>/); only `main` needs it.

A target feeds mutated bytes to one entry point. The contract: the entry point returns or raises one of the
documented exception types; anything else is a finding. libFuzzer (inside atheris) reports the finding, and also
a native crash (abort, SIGSEGV), a hang (-timeout) or a memory blow-up (-rss_limit_mb), and saves the input.
"""

import gc
import os
import sys
import tempfile
import types

# Each target is run as `python fuzz/<target>.py [libFuzzer flags] [corpus dirs]`; see fuzz/README.md.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def instrument_convcore(extra=()):
    """Coverage-guided on convcore's Python code, instrumented in place after import (the C++ kernels are exercised,
    not instrumented), plus the packages in `extra` (e.g. Pillow's Python decoders). In place rather than with
    atheris.instrument_imports: that import hook skips modules loaded through another loader, such as an editable
    install's."""
    import atheris

    packages = ("convcore",) + tuple(extra)
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and (getattr(obj, "__module__", None) or "").split(".")[0] in packages:
            atheris.instrument_func(obj)


def main(test_one_input, seeds, instrument=()):
    """Run libFuzzer on `test_one_input` with sys.argv's flags (it exits the process when done). With no corpus
    directory given, new inputs go to a fresh temporary directory and the target's seeds (fuzz/seeds/<target>,
    never written) are read after it."""
    import atheris

    instrument_convcore(instrument)
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv += [tempfile.mkdtemp(prefix=f"convcore-fuzz-{seeds}-"), os.path.join(SEEDS, seeds)]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
