"""Dependencies point down: every module of convcore imports only its own package and the layers below it, in the
order docs/architecture.md gives. The imports are read from the source (`ast`), function-level ones included."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "python" / "convcore"

# Lowest first; a part may import itself and the parts of lower layers (docs/architecture.md, "Layers"). "" is the
# package root (convcore/__init__.py: the public API), "__main__" the `python -m convcore` entry point.
LAYERS = [
    {"_core", "_cuda", "_validate", "_types", "_optional"},
    {"ops", "cuda"},
    {"functional"},
    {"nn"},
    {"graph"},
    {"io", "transforms"},
    {"data"},
    {"models"},
    {"onnx"},
    {"plan"},
    {"quantization"},
    {"gradients"},
    {"visualize"},
    {""},
    {"ray"},
    {"cli"},
    {"__main__"},
]
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def _part(path):
    """The top-level part of convcore a source file belongs to: 'ops', 'functional', ..., '' for the root."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    return "" if rel.parts == ("__init__",) else rel.parts[0]


def _is_part(name):
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file() or name in ("_core", "_cuda")


def _imported_parts(rel, source):
    """(line, part) for every convcore import in `source`, the text of file `rel` (relative to convcore)."""
    package = list(rel.parent.parts)  # the file's package, relative to convcore
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] == "convcore":
                    yield node.lineno, names[1] if len(names) > 1 else ""
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "convcore":
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                yield node.lineno, target[0]
            else:  # `from convcore import x` / `from .. import x`: x is a part, or a name of the root
                for alias in node.names:
                    yield node.lineno, alias.name if _is_part(alias.name) else ""


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_layer():
    parts = {_part(path) for path in SOURCES}
    assert parts <= set(LEVEL), f"add {sorted(parts - set(LEVEL))} to LAYERS and to docs/architecture.md"


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_imports_point_down(path):
    part = _part(path)
    imports = _imported_parts(path.relative_to(PACKAGE), path.read_text())
    upward = [f"line {line}: imports {target or 'the convcore root'}" for line, target in imports
              if target != part and LEVEL[target] >= LEVEL[part]]
    assert not upward, f"{path.relative_to(PACKAGE)} ({part or 'root'}) must only import lower layers: {upward}"


@pytest.mark.parametrize("statement, part", [
    ("from ..models import get_model_info", "models"),
    ("from .. import models", "models"),
    ("from .. import __version__", ""),
    ("import convcore.models._registry", "models"),
    ("import convcore", ""),
    ("from convcore import models as m", "models"),
    ("from . import _presets", "data"),
    ("def f():\n    from ..graph import trace", "graph"),
])
def test_the_checker_reads_every_import_form(statement, part):
    assert [target for _, target in _imported_parts(pathlib.Path("data/__init__.py"), statement)] == [part]


def test_the_core_layers_import_no_onnx_or_torch():
    # The registry and everything up to the model zoo work without the optional packages (ONNX lowerings only talk
    # to the emitter they are given).
    import subprocess
    import sys

    code = ("import sys, convcore, convcore.ops, convcore.functional, convcore.graph, convcore.models, convcore.data; "
            "print(sorted(m for m in ('onnx', 'torch', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- C++: the same rule for #include -------------------------------------------------------------------------------

CSRC = PACKAGE.parents[1] / "csrc"
# Lowest first (docs/architecture.md, "C++ layers"): the kernels below the eager ops and the Plan (the two never include
# each other), the CUDA backend above the Plan core it shares, the bindings on top.
CXX_LAYERS = ["core", "kernels", "ops", "plan", "cuda", "bindings"]
CXX_LEVEL = {part: level for level, part in enumerate(CXX_LAYERS)}
CXX_SOURCES = sorted(p for p in CSRC.rglob("*") if p.suffix in (".h", ".cpp", ".inc", ".cu", ".cuh"))


def _cxx_includes(source):
    """(line, folder) for every project #include of a C++ source: `#include "folder/file.h"`."""
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#include \"") and "/" in stripped:
            yield number, stripped.split("\"")[1].split("/")[0]


def test_every_cxx_folder_has_a_layer():
    folders = {p.relative_to(CSRC).parts[0] for p in CXX_SOURCES}
    assert folders <= set(CXX_LEVEL), f"add {sorted(folders - set(CXX_LEVEL))} to CXX_LAYERS and docs/architecture.md"


@pytest.mark.parametrize("path", CXX_SOURCES, ids=[str(p.relative_to(CSRC)) for p in CXX_SOURCES])
def test_cxx_includes_point_down(path):
    part = path.relative_to(CSRC).parts[0]
    upward = [f"line {line}: includes {folder}/" for line, folder in _cxx_includes(path.read_text())
              if folder in CXX_LEVEL and CXX_LEVEL[folder] > CXX_LEVEL[part]]
    assert not upward, f"csrc/{path.relative_to(CSRC)} ({part}) must only include its own and lower layers: {upward}"


def test_the_include_checker_reads_include_lines():
    assert list(_cxx_includes('#include <vector>\n#include "plan/core.h"\n  #include "kernels/simd.h"')) == \
        [(2, "plan"), (3, "kernels")]


def test_the_cuda_headers_the_kernels_share_are_cuda_free():
    # kernels/elementwise.h is compiled by nvcc and by plain C++: no intrinsics, no CPU-only headers.
    source = (CSRC / "kernels" / "elementwise.h").read_text()
    assert "immintrin" not in source and "#include \"" not in source


def test_no_cxx_source_uses_openmp():
    # the eager kernels and the Plans share one thread pool (core/pool.h); an OpenMP pragma or omp.h would bring a
    # second runtime, and a second set of threads, back into the wheel
    users = [str(p.relative_to(CSRC)) for p in CXX_SOURCES if "omp.h" in p.read_text() or "pragma omp" in p.read_text()]
    assert not users, f"these sources use OpenMP: {users}"


# --- file sizes --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", SOURCES + CXX_SOURCES, ids=[str(p) for p in SOURCES + CXX_SOURCES])
def test_no_source_file_is_over_700_lines(path):
    lines = path.read_text().count("\n")
    assert lines <= 700, f"{path.name} has {lines} lines: split it along a seam that reads well"
