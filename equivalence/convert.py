"""``convert-params``: a trained Haiku checkpoint → Flax variables, verified before writing.

Checkpoint layouts read:

* ``.npz`` (never unpickled): one array per leaf, keyed ``module/path/leaf``
  (the Haiku tree flattened with ``/``), optionally prefixed ``params/`` or
  ``state/``; unprefixed keys are params. A leaf at the top-level ``'~'`` bucket
  is ``~/name``.
* a pickle (``.pkl``/``.pickle``), only with ``allow_pickle=True``: a Haiku
  params dict, or ``{'params': ..., 'state': ...}``.

Outputs: ``*.msgpack`` (``flax.serialization.to_bytes``) or, for any other
path, an Orbax checkpoint directory. Existing outputs are never overwritten
unless ``force`` is set.
"""

from __future__ import annotations

import pickle
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flaxify.equivalence.errors import CheckpointReadError, CheckUsageError
from flaxify.equivalence.report import Report

Tree = dict[str, dict[str, np.ndarray]]


@dataclass(frozen=True)
class Conversion:
    """The verification report and, when it passed, the converted variables."""

    report: Report
    variables: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.variables is not None


def read_checkpoint(path: Path, *, allow_pickle: bool = False) -> tuple[Tree, Tree]:
    """Returns ``(params, state)`` Haiku trees from ``path``."""
    if not path.is_file():
        raise CheckpointReadError(f"{path}: no such checkpoint file")
    if path.suffix == ".npz":
        return _read_npz(path)
    if path.suffix in {".pkl", ".pickle", ".pk"}:
        if not allow_pickle:
            raise CheckpointReadError(
                f"{path}: refusing to unpickle (it can run arbitrary code); pass --allow-pickle if you trust it"
            )
        return _read_pickle(path)
    raise CheckpointReadError(
        f"{path}: unknown checkpoint format {path.suffix!r}; expected .npz, or .pkl with --allow-pickle"
    )


def _read_npz(path: Path) -> tuple[Tree, Tree]:
    params: Tree = {}
    state: Tree = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                kind, rest = _split_kind(key)
                module, _, leaf = rest.rpartition("/")
                if not module or not leaf:
                    raise CheckpointReadError(f"{path}: key {key!r} is not 'module/path/leaf'")
                (state if kind == "state" else params).setdefault(module, {})[leaf] = data[key]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointReadError(f"{path}: not a readable .npz archive: {exc}") from None
    return params, state


def _split_kind(key: str) -> tuple[str, str]:
    for kind in ("params", "state"):
        if key.startswith(kind + "/"):
            return kind, key[len(kind) + 1 :]
    return "params", key


def _read_pickle(path: Path) -> tuple[Tree, Tree]:
    try:
        with path.open("rb") as fh:
            data = pickle.load(fh)  # noqa: S301 - only behind --allow-pickle
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a read error
        raise CheckpointReadError(f"{path}: cannot unpickle: {exc}") from None
    if not isinstance(data, Mapping):
        raise CheckpointReadError(f"{path}: expected a dict of Haiku params, got {type(data).__name__}")
    if "params" in data and isinstance(data["params"], Mapping):
        return _as_tree(data["params"]), _as_tree(data.get("state") or {})
    return _as_tree(data), {}


def _as_tree(tree: Mapping[str, Any]) -> Tree:
    return {str(m): {str(n): np.asarray(v) for n, v in leaves.items()} for m, leaves in tree.items()}


def save_npz(
    path: Path, params: Mapping[str, Mapping[str, Any]], state: Mapping[str, Mapping[str, Any]] | None = None
) -> None:
    """Writes Haiku ``params``/``state`` in the layout :func:`read_checkpoint` reads."""
    arrays = {f"params/{m}/{n}": np.asarray(v) for m, leaves in params.items() for n, v in leaves.items()}
    arrays.update({f"state/{m}/{n}": np.asarray(v) for m, leaves in (state or {}).items() for n, v in leaves.items()})
    np.savez(path, **arrays)


def convert_checkpoint(
    haiku_obj: Any,
    flax_obj: Any,
    checkpoint: Path | str,
    inputs: Sequence[Any],
    *,
    kwargs: Mapping[str, Any] | None = None,
    ctor: Mapping[str, Any] | None = None,
    allow_pickle: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
) -> Conversion:
    """Maps the checkpoint onto the Flax tree and checks both models agree on ``inputs`` (CPU)."""
    from flaxify.equivalence.runner import run_comparison

    params, state = read_checkpoint(Path(checkpoint), allow_pickle=allow_pickle)
    report, run = run_comparison(
        haiku_obj,
        flax_obj,
        inputs,
        kwargs=kwargs,
        ctor=ctor,
        devices="cpu",
        precision="highest",
        rtol=rtol,
        atol=atol,
        methods=None,
        init_seeds=0,
        run_probes=False,
        seed=0,
        haiku_variables=(params, state),
    )
    # "Verified before writing" means outputs reproduced: a model whose every output draws random
    # numbers Flax cannot replay (report.outputs_compared False) proved its mapping only.
    verified = report.equivalent and report.outputs_compared
    return Conversion(report, run.variables if verified else None)


def write_variables(variables: Mapping[str, Any], out: Path, *, force: bool = False) -> str:
    """Writes msgpack (``*.msgpack``) or an Orbax directory; returns the format written.

    The new output is written next to ``out`` first and moved into place only
    once complete, so a failed write never destroys what ``--force`` replaces.
    """
    if out.exists() and not force:
        raise CheckUsageError(f"{out} already exists; pass --force to overwrite it")
    if not out.absolute().parent.is_dir():
        raise CheckUsageError(f"folder {out.parent} does not exist")
    staging = out.absolute().with_name(f".{out.name}.flaxify-tmp")
    _remove(staging)
    if out.suffix == ".msgpack":
        from flax import serialization

        staging.write_bytes(serialization.msgpack_serialize(_host(variables)))
        kind = "msgpack"
    else:
        _write_orbax(variables, staging)
        kind = "orbax"
    _remove(out)
    staging.rename(out)
    return kind


def _write_orbax(variables: Mapping[str, Any], path: Path) -> None:
    try:
        import orbax.checkpoint as ocp
    except ImportError:
        raise CheckUsageError(
            "writing an Orbax checkpoint needs orbax-checkpoint; install it or write *.msgpack"
        ) from None
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, _host(variables))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _host(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _host(v) for k, v in tree.items()}
    return np.asarray(tree)
