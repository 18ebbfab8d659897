"""GPU comparison: the zoo's correct twins agree on the GPU at highest precision (skips without a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import pytest

from flaxify.equivalence import compare, parse_spec
from flaxify.equivalence.refs import resolve_ref


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


pytestmark = pytest.mark.skipif(not _has_gpu(), reason="no GPU visible to JAX")
ZOO = Path(__file__).resolve().parent.parent / "fixtures" / "zoo"


@pytest.mark.parametrize("name", ["mlp", "convnet", "lstm", "batchnorm"])
def test_correct_twin_is_equivalent_on_gpu(name):
    case = json.loads((ZOO / name / "case.json").read_text())
    report = compare(
        resolve_ref(str(ZOO / name / case["haiku"])),
        resolve_ref(str(ZOO / name / case["flax"])),
        [parse_spec(s, salt=i) for i, s in enumerate(case["inputs"])],
        kwargs=case["kwargs"],
        devices="gpu",
        precision="highest",
        init_seeds=0,
    )
    assert report.equivalent, report.format_table()
    assert {c.device for c in report.checks} == {"gpu"}
