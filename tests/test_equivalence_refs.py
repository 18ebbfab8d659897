"""resolve_ref: file and package references, sibling imports kept apart, clear errors."""

from __future__ import annotations

import pytest

from flaxify.equivalence.errors import UnresolvableRefError
from flaxify.equivalence.refs import resolve_ref


def _project(root, value: int):
    root.mkdir()
    (root / "helper.py").write_text(f"VALUE = {value}\n")
    (root / "model.py").write_text("import helper\n\nnet = helper.VALUE\n")
    return root


def test_two_projects_with_same_module_names_keep_their_own_siblings(tmp_path):
    haiku = _project(tmp_path / "haiku", 1)
    flax = _project(tmp_path / "flax", 2)
    assert resolve_ref(f"{haiku}/model.py:net") == 1
    assert resolve_ref(f"{flax}/model.py:net") == 2


def test_dotted_names_and_package_modules(tmp_path):
    (tmp_path / "m.py").write_text("class A:\n    B = 3\n")
    assert resolve_ref(f"{tmp_path}/m.py:A.B") == 3
    assert resolve_ref("flaxify.equivalence.spec:DTYPES")["f32"] == "float32"


@pytest.mark.parametrize(
    ("text", "message"),
    [("nofile.py:x", "no such file"), ("justaname", "bad reference"), ("json:nope", "has no name 'nope'")],
)
def test_errors(text, message):
    with pytest.raises(UnresolvableRefError, match=message):
        resolve_ref(text)


def test_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\ndef (:\n")
    with pytest.raises(UnresolvableRefError, match=r"bad.py:2: syntax error"):
        resolve_ref(f"{bad}:x")
