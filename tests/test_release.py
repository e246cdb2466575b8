"""Release artifacts: one version everywhere, the wheel's and the sdist's contents, the installed package's runtime.

`.ci/run` builds the sdist and the repaired wheel with scripts/build_release.sh, installs the wheel and sets
CONVCORE_WHEEL, CONVCORE_SDIST and CONVCORE_TEST_INSTALLED; the checks on those artifacts skip without them.
"""

import importlib.metadata
import os
import platform
import re
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import convcore

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "convcore"
NOT_SHIPPED = re.compile(r"(^|/)__pycache__/|\.pyc$|\.so$")  # what a local build may leave in the source tree

# The most recent glibc a wheel may require: manylinux_2_34 (issue 13). scripts/build_release.sh asks auditwheel
# for the same floor.
GLIBC_FLOOR = (2, 34)


def _declared_version() -> str:
    match = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert match, "pyproject.toml has no [project] version"
    return match.group(1)


def _artifact(env: str) -> Path:
    path = os.environ.get(env)
    if not path:
        pytest.skip(f"{env} is not set (.ci/run sets it to the artifact scripts/build_release.sh built)")
    return Path(path)


def _package_files() -> set[str]:
    """The files of python/convcore, as the wheel must hold them (the checkout's, less a local build's leftovers)."""
    files = {p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*") if p.is_file()}
    return {f for f in files if not NOT_SHIPPED.search(f)}


def _elf_needed(elf: bytes) -> list[str]:
    """DT_NEEDED entries of a little-endian ELF64 shared object (read from its dynamic segment, as the loader does:
    patchelf leaves replaced names behind in the string table, so a byte search would be fooled)."""
    assert elf[:6] == b"\x7fELF\x02\x01", "expected a little-endian ELF64 file"
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", elf, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (p_offset, p_filesz)
    assert dynamic, "no dynamic segment"
    entries = [struct.unpack_from("<qQ", elf, dynamic[0] + i) for i in range(0, dynamic[1], 16)]
    strtab = next(v for tag, v in entries if tag == 5)  # DT_STRTAB, a virtual address
    base = next(off + strtab - va for va, off, size in loads if va <= strtab < va + size)
    return [elf[base + v:elf.index(b"\0", base + v)].decode() for tag, v in entries if tag == 1]  # DT_NEEDED


# --------------------------------------------------------------------------------------------------- version
def test_version_has_one_source():
    """pyproject.toml's version reaches the metadata, the compiled module, convcore.__version__ and --version."""
    declared = _declared_version()
    try:
        installed = importlib.metadata.version("convcore")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("convcore is not installed (pip install . or the wheel): no distribution metadata")
    assert convcore.__version__ == declared == installed == convcore._core.config()["version"]
    for command in ([sys.executable, "-m", "convcore", "--version"],
                    [str(Path(sys.executable).with_name("convcore")), "--version"]):
        if not Path(command[0]).exists():
            continue  # no console script beside this interpreter (e.g. a system-wide install)
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"convcore {declared}\n"


# ----------------------------------------------------------------------------------------------------- wheel
@pytest.fixture(scope="module")
def wheel():
    path = _artifact("CONVCORE_WHEEL")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        meta = {n.split("/", 1)[1]: archive.read(n) for n in names if re.match(r"convcore-[^/]+\.dist-info/", n)}
        core = [n for n in names if re.fullmatch(r"convcore/_core\.[^/]+\.so", n)]
        assert len(core) == 1, core
        return path, names, meta, archive.read(core[0])


def test_wheel_holds_the_package_and_nothing_else(wheel):
    _, names, _, _ = wheel
    shipped = {n for n in names if n.startswith("convcore/")}
    assert shipped - {n for n in shipped if re.fullmatch(r"convcore/_core\.[^/]+\.so", n)} == _package_files()
    for required in ("convcore/__init__.py", "convcore/_core.pyi", "convcore/py.typed", "convcore/data/LICENSES.md",
                     "convcore/data/imagenet_classes.txt", "convcore/data/images/chelsea.jpg",
                     "convcore/data/images/coffee.jpg", "convcore/data/images/rocket.jpg"):
        assert required in shipped
    tops = {n.split("/", 1)[0] for n in names}
    assert tops <= {"convcore", "convcore.libs", f"convcore-{convcore.__version__}.dist-info"}, tops
    for name in names:  # no tests, no build files, no sources
        assert not re.search(r"(^|/)(tests?|benchmarks|csrc)/|conftest\.py$|(^|/)test_[^/]*\.py$|CMakeLists\.txt$|"
                             r"pyproject\.toml$|\.(cpp|h|inc|o|a|pyc)$", name), name


def test_wheel_bundles_no_library_and_needs_no_openmp_or_libstdcxx(wheel):
    """The threads are convcore's own (no OpenMP runtime to bundle or to clash with torch's libgomp in the same
    process) and libstdc++ is linked in statically: _core needs only glibc's libraries."""
    _, names, _, core = wheel
    assert not [n for n in names if n.startswith("convcore.libs/")], names
    needed = _elf_needed(core)
    assert not [n for n in needed if n.startswith(("libgomp", "libomp", "libiomp", "libstdc++"))], needed


def test_wheel_is_manylinux_within_the_glibc_floor(wheel):
    path, _, meta, _ = wheel
    tags = re.findall(r"(?m)^Tag: (\S+)$", meta["WHEEL"].decode())
    assert tags
    for tag in tags:
        match = re.fullmatch(rf"cp\d+-cp\d+-manylinux_(\d+)_(\d+)_{re.escape(platform.machine())}", tag)
        assert match and (int(match[1]), int(match[2])) <= GLIBC_FLOOR, tag
    assert path.name.endswith(f"-{tags[0].split('-', 2)[2]}.whl")


def test_wheel_metadata_licenses_and_size(wheel):
    path, names, meta, _ = wheel
    assert re.search(rf"(?m)^Version: {re.escape(_declared_version())}$", meta["METADATA"].decode())
    for license_file in ("licenses/LICENSE", "licenses/LICENSES_bundled.txt"):
        assert license_file in meta
    bundled = meta["licenses/LICENSES_bundled.txt"].decode()
    assert "libstdc++" in bundled and "GCC RUNTIME LIBRARY EXCEPTION" in bundled and "pybind11" in bundled
    recorded = {line.split(",", 1)[0] for line in meta["RECORD"].decode().splitlines() if line}
    assert recorded == set(names)
    assert path.stat().st_size < 5_000_000, "the wheel passed 5 MB: find out why (unzip -l) before raising this"


# ----------------------------------------------------------------------------------------------------- sdist
def test_sdist_holds_the_sources_and_no_build_output():
    path = _artifact("CONVCORE_SDIST")
    with tarfile.open(path) as archive:
        names = {m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile() and "/" in m.name}
    for required in ("pyproject.toml", "CMakeLists.txt", "README.md", "LICENSE", "LICENSES_bundled.txt"):
        assert required in names
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "csrc").rglob("*") if p.is_file()}
    assert sources and sources <= names
    assert {f"python/{f}" for f in _package_files()} <= names
    for name in names:
        assert not re.match(r"(build|dist|\.venv[^/]*)/|.*(__pycache__/|\.so$|\.o$|\.pyc$)", name), name


# -------------------------------------------------------------------------------------------- installed wheel
def test_installed_package_loads_no_openmp_runtime():
    if not os.environ.get("CONVCORE_TEST_INSTALLED"):
        pytest.skip("CONVCORE_TEST_INSTALLED is not set (.ci/run tests the installed wheel)")
    code = ("import numpy as np, convcore, convcore.functional as F\n"
            "convcore.set_num_threads(2)\n"
            "F.conv2d(np.ones((1, 8, 32, 32), np.float32), np.ones((8, 8, 3, 3), np.float32), padding=1)\n"
            "print(open('/proc/self/maps').read())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    omp = {line.split()[-1] for line in result.stdout.splitlines() if re.search(r"lib(g|i)?omp", line)}
    assert not omp, omp
