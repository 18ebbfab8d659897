"""Acceptance: whole Haiku programs written as a new user would, migrated unaided.

``fixtures/acceptance/*.py`` are complete Haiku programs (model, ``init`` /
``apply``, a few optax steps) in the style of public Haiku code, each combining
several features, written for this test and never tuned to the engine: a GPT
decoder LM, an IMPALA agent, a diffusion UNet, a Perceiver, a NeRF MLP and
BYOL. Each is migrated by the real engine into ``tmp_path`` and then

- has no ``TODO(flaxify)`` (every construct it uses is "exact" in the README),
  and migrating the output again changes nothing;
- runs: the migrated ``main()`` trains for its steps and prints finite losses;
- equals the original by :func:`flaxify.equivalence.compare`: parameters one
  to one, outputs bit-exact on CPU (random draws compared with Haiku's keys
  replayed), gradients within tolerance (bit-exact where no norm layer
  reorders the backward sums).

A program the engine cannot migrate exactly yet is a strict xfail whose reason
names the construct and the gap, so fixing the engine turns it into a failure
that demands the mark be removed.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from flaxify.migrate import migrate_source

ACCEPTANCE = Path(__file__).resolve().parent.parent / "fixtures" / "acceptance"
_LOSS = re.compile(r"^step (\d+): loss (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Program:
    """One acceptance program: the transformed object to check and how to call it."""

    file: str
    name: str
    inputs: tuple[str, ...] | dict[str, tuple[str, ...]]
    kwargs: dict[str, Any] | None = None
    # False where a LayerNorm/GroupNorm backward sums in another order (README support matrix).
    gradients_bitexact: bool = True
    xfail: str | None = None


PROGRAMS = (
    Program("gpt_decoder", "model", ("i32[2,8]:0..40",), {"is_training": False},
            gradients_bitexact=False),
    Program("impala_agent", "net", ("f32[3,2,8,8,3]", "i32[3,2]:0..2")),
    Program("diffusion_unet", "denoiser", ("f32[2,16,16,1]", "i32[2]:0..100"), gradients_bitexact=False),
    Program("diffusion_unet", "diffusion", ("f32[2,16,16,1]",), gradients_bitexact=False),
    Program(
        "perceiver", "net",
        {"init": ("f32[2,10,5]", "f32[2,6,7]"), "encode": ("f32[2,10,5]",), "decode": ("f32[2,4,16]", "f32[2,6,7]")},
        gradients_bitexact=False,
    ),
    Program("nerf_mlp", "renderer", ("f32[4,3]", "f32[4,3]")),
    Program("byol", "network", ("f32[2,8,8,3]",), {"is_training": False}),
)
FILES = sorted({p.file for p in PROGRAMS})
# Gaps by file: the program does not run (every xfail above), or it gets a TODO (only an honest one).
_RUN_GAPS = {p.file: p.xfail for p in PROGRAMS if p.xfail}
_TODO_GAPS: dict[str, str] = {}


def _param(value: Any, ident: str, reason: str | None) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(value, id=ident, marks=marks)


def _import(path: Path, label: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_flaxify_accept_{label}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _migrate(file: str, out_dir: Path) -> tuple[Path, tuple[Any, ...]]:
    source = ACCEPTANCE / f"{file}.py"
    result = migrate_source(source.read_bytes(), str(source))
    target = out_dir / source.name
    target.write_bytes(result.source)
    return target, tuple(result.todos)


def test_every_program_is_listed() -> None:
    assert set(FILES) == {p.stem for p in ACCEPTANCE.glob("*.py")}


@pytest.mark.parametrize("file", [_param(f, f, _TODO_GAPS.get(f)) for f in FILES])
def test_migrates_without_todos(file: str, tmp_path: Path) -> None:
    """0 TODOs; the output imports neither Haiku nor flaxify; a second run is a fixed point."""
    target, todos = _migrate(file, tmp_path)
    assert not migrate_source(target.read_bytes(), str(target)).changed
    assert todos == (), todos
    tree = ast.parse(target.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in {"haiku", "flaxify"}}, imported
    assert "hk" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


@pytest.mark.parametrize("file", [_param(f, f, _RUN_GAPS.get(f)) for f in FILES])
def test_migrated_program_trains(file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The migrated program's own ``main()`` runs its optax steps and prints finite losses."""
    target, _ = _migrate(file, tmp_path)
    _import(target, "run").main()
    losses = _LOSS.findall(capsys.readouterr().out)
    assert [int(step) for step, _ in losses] == [0, 1, 2]
    assert all(math.isfinite(float(loss)) for _, loss in losses), losses


@pytest.mark.parametrize("program", [_param(p, f"{p.file}.{p.name}", p.xfail) for p in PROGRAMS])
def test_migrated_program_equals_original(program: Program, tmp_path: Path) -> None:
    from flaxify.equivalence import compare, parse_spec

    target, _ = _migrate(program.file, tmp_path)
    raw = program.inputs
    inputs: Any = (
        {method: [parse_spec(s) for s in specs] for method, specs in raw.items()}
        if isinstance(raw, dict)
        else [parse_spec(s) for s in raw]
    )
    haiku_obj = getattr(_import(ACCEPTANCE / f"{program.file}.py", "hk"), program.name)
    flax_obj = getattr(_import(target, "flax"), program.name)
    # Initializer statistics and probes are covered elsewhere (test_equivalence_*); 0 seeds keeps this fast.
    report = compare(
        haiku_obj, flax_obj, inputs, kwargs=program.kwargs, devices="cpu", init_seeds=0, run_probes=False
    )
    assert report.equivalent, report.format_table()
    assert report.outputs_compared, report.format_table()
    assert report.bitexact, report.format_table()
    assert report.gradients_bitexact == program.gradients_bitexact, report.format_table()
    if program.kwargs:  # compare also ran the training phase (the flag switched on) and its state
        train = [c for c in report.checks if c.phase == "train"]
        assert train and all(c.status == "compared" and c.bitexact for c in train), report.format_table()
