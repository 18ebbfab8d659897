"""The traced-region and traced-value analysis: what is reached, what is static (tables of projects)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaxify.lint.api import lint_paths
from flaxify.lint.settings import LintSettings

# (name, {file: source}, expected "file:line CODE" findings)
CASES: list[tuple[str, dict[str, str], list[str]]] = [
    ("call-form jit respects static_argnums", {"m.py": (
        "import jax\ndef f(x, n):\n    if n > 0:\n        return x\n    return float(x)\n"
        "g = jax.jit(f, static_argnums=1)\n")}, ["m.py:5 JX204"]),
    ("partial-bound arguments are static", {"m.py": (
        "import jax\nfrom functools import partial\ndef f(cfg, x):\n    if cfg > 1:\n        return x\n    return x\n"
        "g = jax.jit(partial(f, 3))\n")}, []),
    ("vmap in_axes=None is not batched", {"m.py": (
        "import jax\ndef f(x, flag):\n    return x if flag > 0 else -x\ng = jax.vmap(f, in_axes=(0, None))\n")}, []),
    ("self.method helpers are reached", {"m.py": (
        "import jax\nfrom functools import partial\nclass T:\n    def log(self, v):\n        print('v', v)\n"
        "    @partial(jax.jit, static_argnums=0)\n    def step(self, x):\n        self.log(x)\n        return x\n")},
     ["m.py:5 JX101"]),
    ("relative imports and re-exports", {
        "pkg/__init__.py": "from .util import helper\n",
        "pkg/util.py": "def helper(v):\n    return int(v)\n",
        "pkg/train.py": "import jax\nfrom pkg import helper\n\n@jax.jit\ndef step(x):\n    return helper(x)\n"},
     ["pkg/util.py:2 JX204"]),
    ("lax.scan lambda body", {"m.py": (
        "import jax\nimport numpy as np\ndef run(xs):\n"
        "    return jax.lax.scan(lambda c, x: (c + np.exp(x), None), 0.0, xs)\n")}, ["m.py:4 JX206"]),
    ("nested def sees the traced closure", {"m.py": (
        "import jax\n@jax.jit\ndef f(x):\n    def inner():\n        return float(x)\n    return inner()\n")},
     ["m.py:5 JX204"]),
    ("tree_map callback parameters are traced", {"m.py": (
        "import jax\n@jax.jit\ndef f(params):\n    return jax.tree_util.tree_map(lambda p: float(p), params)\n")},
     ["m.py:4 JX204"]),
    ("host callbacks are not traced", {"m.py": (
        "import jax\n@jax.jit\ndef f(x):\n    def show(v):\n        print('v', float(v))\n"
        "    jax.debug.callback(show, x)\n    return x\n")}, []),
    ("handled concretization errors are silent", {"m.py": (
        "import jax\n@jax.jit\ndef f(x, rate):\n    try:\n        if rate == 0.0:\n            return x\n"
        "    except jax.errors.ConcretizationTypeError:\n        pass\n    return x * rate\n")}, []),
    ("helper return values keep their static parts", {"m.py": (
        "import jax\nimport jax.numpy as jnp\ndef sizes(x):\n    return x.shape[0], x * 2\n@jax.jit\ndef f(x):\n"
        "    n, y = sizes(x)\n    return jnp.ones((n,)) + y\n")}, []),
    ("grad alone allows Python control flow", {"m.py": (
        "import jax\ndef f(x):\n    if x < 3:\n        return 3 * x ** 2\n    return -4 * x\ndf = jax.grad(f)\n")}, []),
    ("grad inside jit does not", {"m.py": (
        "import jax\ndef f(x):\n    if x < 3:\n        return 3 * x ** 2\n    return -4 * x\n"
        "@jax.jit\ndef step(x):\n    return jax.grad(f)(x)\n")}, ["m.py:3 JX201"]),
    ("untraced code is never flagged", {"m.py": (
        "import numpy as np\nimport random\ndef host(x):\n    print(x)\n    if x > 0:\n        return float(np.sin(x))\n"
        "    return random.random()\n")}, []),
    ("two calls deep across modules", {
        "train.py": "import jax\nimport util\n\n@jax.jit\ndef step(x):\n    return util.outer(x)\n",
        "util.py": "import deep\n\ndef outer(v):\n    return deep.inner(v * 2)\n",
        "deep.py": "def inner(w):\n    if w > 0:\n        return w\n    return -w\n"},
     ["deep.py:2 JX201"]),
]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")


@pytest.mark.parametrize(("name", "files", "expected"), CASES, ids=[c[0] for c in CASES])
def test_analysis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, str],
                  expected: list[str]) -> None:
    _write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    result = lint_paths([Path(".")], LintSettings())
    assert sorted(f"{f.path}:{f.line} {f.code}" for f in result.findings) == sorted(expected)


def test_chain_names_every_hop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, dict(CASES[-1][1]))
    monkeypatch.chdir(tmp_path)
    [finding] = lint_paths([Path(".")], LintSettings()).findings
    assert finding.message.endswith("(reached from step (train.py:6) via outer -> inner)")
