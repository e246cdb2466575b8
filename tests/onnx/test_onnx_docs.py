"""docs/onnx.md keeps in step with the code: its exclusion table is backend_cases.EXCLUDE, its op table names every
ONNX op type the importer converts or folds."""

import pathlib
import re

import pytest

pytest.importorskip("onnx")
from backend_cases import EXCLUDE  # noqa: E402

import convcore.onnx.importer as importer  # noqa: E402

DOC = (pathlib.Path(__file__).parents[2] / "docs" / "onnx.md").read_text()


def test_exclusion_table_is_the_exclusion_list():
    rows = re.findall(r"^\| `(.+?)` \| (\d+) \| (.+?) \|$", DOC, re.M)
    table = {pattern.replace("\\|", "|"): reason for pattern, _, reason in rows}
    assert table == EXCLUDE


def test_op_table_names_every_imported_op():
    ops_column = " ".join(re.findall(r"^\| ([A-Z][^|]*?) \|", DOC, re.M))
    named = set(re.findall(r"[A-Z][A-Za-z0-9]+", ops_column))
    missing = (set(importer.IMPORTED_OPS) | set(importer.CONSTANT_ONLY_OPS)) - named
    assert not missing, f"docs/onnx.md's op table lacks {sorted(missing)}"
