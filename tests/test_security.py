"""Static stays static: migrate and lint never import or run what they read; nothing is unpickled unasked.

Every probe file here has a visible effect when imported or unpickled: it creates a
marker file. Each test first proves the probe works (importing or unpickling it really
does create the marker), then runs flaxify on it and asserts that no marker appeared.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flaxify.cli import main

FLAXIFY = str(Path(sys.executable).with_name("flaxify"))
ZOO = Path(__file__).resolve().parent.parent / "fixtures" / "zoo" / "mlp"
HAIKU_REF = f"{ZOO}/haiku_model.py:net"
FLAX_REF = f"{ZOO}/flax_model.py:net"

# A Haiku model the migrate engine really rewrites, so the probe goes through every pass.
HAIKU_BODY = """import haiku as hk


class Probe(hk.Module):
    def __call__(self, x):
        return hk.Linear(4)(x)


def forward(x):
    return Probe()(x)


net = hk.transform(forward)
"""


def side_effect(marker: Path) -> str:
    """One line of Python that creates ``marker`` when it runs."""
    return f"open({str(marker)!r}, 'w').close()\n"


def make_probe_tree(root: Path, markers: Path) -> list[str]:
    """A package whose every module, imported, creates ``markers/<module>``; returns the module names.

    The names shadow nothing flaxify imports, except ``haiku.py``/``jax.py``, which only
    matter to a subprocess started with the tree on ``sys.path``.
    """
    pkg = root / "flaxify_probe_pkg"
    pkg.mkdir(parents=True)
    modules = {
        "flaxify_probe_pkg/__init__.py": "",
        "flaxify_probe_pkg/model.py": HAIKU_BODY,
        "flaxify_probe_pkg/train.py": "import jax\n\n@jax.jit\ndef step(x):\n    print(x)\n    return x\n",
        "flaxify_probe_top.py": HAIKU_BODY,
        "conftest.py": "",
        "setup.py": "",
    }
    for name, body in modules.items():
        (root / name).write_text(side_effect(markers / name.replace("/", ".")) + body, encoding="utf-8")
    return sorted(modules)


@pytest.fixture
def probe(tmp_path: Path) -> tuple[Path, Path]:
    """(tree, markers folder), with the probe proven to fire when really imported."""
    tree, markers = tmp_path / "tree", tmp_path / "markers"
    markers.mkdir()
    make_probe_tree(tree, markers)
    # Positive control: importing the top-level probe really leaves a marker.
    subprocess.run([sys.executable, "-c", "import flaxify_probe_pkg.train"], cwd=tree, check=True)
    assert sorted(p.name for p in markers.iterdir()) == ["flaxify_probe_pkg.__init__.py", "flaxify_probe_pkg.train.py"]
    for marker in markers.iterdir():
        marker.unlink()
    return tree, markers


def run_cli(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the real ``flaxify`` with the tree as working folder *and* on ``PYTHONPATH``.

    So any import of a module by name, or of a file by path, would succeed and show.
    """
    env = {**os.environ, "PYTHONPATH": str(tree), "FLAXIFY_CACHE_DIR": str(tree.parent / "cache")}
    return subprocess.run([FLAXIFY, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args",
    [("migrate", "--diff", "."), ("migrate", "--check", "."), ("migrate", "."), ("lint", "--no-cache", "."),
     ("lint", "-j", "2", "."), ("lint", "--fix", ".")],
    ids=["migrate-diff", "migrate-check", "migrate-in-place", "lint", "lint-j2", "lint-fix"],
)
def test_commands_never_import_the_code_they_read(probe: tuple[Path, Path], args: tuple[str, ...]) -> None:
    tree, markers = probe
    done = run_cli(tree, *args)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr
    assert list(markers.iterdir()) == []
    if args == ("migrate", "."):
        # It really did read and rewrite the probes: proof the code went through the engine.
        assert "hk.Module" not in (tree / "flaxify_probe_top.py").read_text(encoding="utf-8")


def test_in_process_runs_leave_no_probe_module_in_sys_modules(
    probe: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, markers = probe
    monkeypatch.syspath_prepend(str(tree))
    monkeypatch.chdir(tree)
    main(["migrate", "--diff", "."])
    main(["lint", "--no-cache", "."])
    assert list(markers.iterdir()) == []
    assert not [name for name in sys.modules if name.startswith("flaxify_probe")]


def test_an_encoding_cookie_never_imports_a_codec_from_the_tree(tmp_path: Path) -> None:
    """``# coding: NAME`` is looked up among registered codecs only, never as a module to import."""
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "flaxify_probe_codec.py").write_text(side_effect(markers / "codec"), encoding="utf-8")
    (tmp_path / "cookie.py").write_bytes(b"# -*- coding: flaxify_probe_codec -*-\nimport haiku as hk\n")
    for args in (("migrate", "--diff", "cookie.py"), ("lint", "--no-cache", "cookie.py")):
        done = run_cli(tmp_path, *args)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (0, 1), done.stderr  # lint reads UTF-8 and ignores the cookie
    assert list(markers.iterdir()) == []


class Planted:
    """Unpickling this calls ``open(marker, "w")``: a visible effect, no harm."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (self.marker, "w")


@pytest.fixture
def planted(tmp_path: Path) -> tuple[bytes, Path]:
    """A malicious pickle payload and the marker it creates, proven to fire on ``pickle.loads``."""
    marker = tmp_path / "UNPICKLED"
    payload = pickle.dumps({"params": {"linear": {"w": Planted(marker)}}})
    pickle.loads(payload).get("params")["linear"]["w"].close()  # positive control  # noqa: S301
    assert marker.exists()
    marker.unlink()
    return payload, marker


@pytest.mark.parametrize("name", ["ckpt.pkl", "ckpt.pickle", "ckpt.npz", "ckpt.npy", "ckpt", "ckpt.msgpack"])
def test_convert_params_never_unpickles_without_allow_pickle(
    tmp_path: Path, planted: tuple[bytes, Path], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    payload, marker = planted
    (tmp_path / name).write_bytes(payload)
    args = ["convert-params", HAIKU_REF, FLAX_REF, str(tmp_path / name), "-o", str(tmp_path / "out.msgpack")]
    code = main([*args, "--input", "f32[4,6]", "--kwargs", '{"is_training": false}'])
    assert code == 2, capsys.readouterr().err
    assert not marker.exists()
    assert not (tmp_path / "out.msgpack").exists()


def test_convert_params_refuses_object_arrays_inside_an_npz(
    tmp_path: Path, planted: tuple[bytes, Path]
) -> None:
    """An ``.npz`` member may itself be a pickled object array; it must not be loaded."""
    _, marker = planted
    weights = np.empty((1,), dtype=object)
    weights[0] = Planted(marker)
    np.savez(tmp_path / "ckpt.npz", **{"params/mlp/~/linear_0/w": weights})
    args = ["convert-params", HAIKU_REF, FLAX_REF, str(tmp_path / "ckpt.npz"), "-o", str(tmp_path / "out.msgpack")]
    assert main([*args, "--input", "f32[4,6]", "--kwargs", '{"is_training": false}']) == 2
    assert not marker.exists()


def test_check_input_npy_with_a_pickled_object_array_is_not_unpickled(
    tmp_path: Path, planted: tuple[bytes, Path]
) -> None:
    _, marker = planted
    data = np.empty((4, 6), dtype=object)
    data[0, 0] = Planted(marker)
    np.save(tmp_path / "x.npy", data, allow_pickle=True)
    code = main(["check", HAIKU_REF, FLAX_REF, "--input", str(tmp_path / "x.npy"), "--kwargs", '{"is_training": false}'])
    assert code == 2
    assert not marker.exists()
