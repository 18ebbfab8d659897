"""``flaxify check`` and ``flaxify convert-params``: thin commands over ``flaxify.equivalence``.

Both import and run user code (the two references). The report table goes to
stderr through :mod:`flaxify.reporting`; ``--json`` writes the full report.
Exit codes: 0 equivalent / converted, 1 not equivalent (including parameters
that do not map), 2 usage or environment errors (bad reference, SPEC, JSON,
checkpoint, or a model that raises).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from flaxify import reporting

EXIT_OK, EXIT_NOT_EQUIVALENT, EXIT_USAGE = 0, 1, 2
_METHOD_SPEC = re.compile(r"^(?P<method>[A-Za-z_][A-Za-z0-9_]*)=(?P<spec>.+)$")

REF_HELP = """HAIKU_REF and FLAX_REF are path/to/file.py:NAME or package.module:NAME.
A Haiku NAME may be an hk.Transformed, hk.TransformedWithState, hk.MultiTransformed
(each method compared), a plain function (transformed for you) or an hk.Module subclass
(built with --ctor); a Flax NAME is a linen Module instance, or a class built with --ctor.

\b
SPEC: f32[8,28,28,1], bf16[4,16], i32[2,16]:0..50 (integers in [0, 50)) or x.npy;
repeat --input for several positional inputs; METHOD=SPEC gives a multi-method
model's method its own inputs, and init=SPEC those of its init when they differ
from the first method's.

WARNING: this command imports and runs both referenced modules (user code)."""


_COMMON_OPTIONS = (
    click.option(
        "--input",
        "specs",
        multiple=True,
        required=True,
        metavar="SPEC",
        help="An input SPEC (repeatable, in call order).",
    ),
    click.option(
        "--kwargs",
        "kwargs_json",
        metavar="JSON",
        help='Call keyword arguments, e.g. \'{"is_training": false}\'; per method: {"encode": {...}}.',
    ),
    click.option(
        "--ctor",
        "ctor_json",
        metavar="JSON",
        help='Constructor arguments for a referenced class; {"haiku": {...}, "flax": {...}} when they differ.',
    ),
    click.option("--rtol", type=float, default=None, help="Relative tolerance (default by dtype: float32 1e-5)."),
    click.option("--atol", type=float, default=None, help="Absolute tolerance (default by dtype: float32 1e-6)."),
)


def _common(fn):
    """Adds the options ``check`` and ``convert-params`` share, in this order in ``--help``."""
    for option in reversed(_COMMON_OPTIONS):
        fn = option(fn)
    return fn


@click.command("check", epilog=REF_HELP)
@click.argument("haiku_ref")
@click.argument("flax_ref")
@_common
@click.option(
    "--devices",
    type=click.Choice(["all", "cpu", "gpu"]),
    default="all",
    show_default=True,
    help="Devices to compare on.",
)
@click.option(
    "--precision",
    type=click.Choice(["highest", "default", "high"]),
    default="highest",
    show_default=True,
    help="jax_default_matmul_precision for the comparison (default shows TF32 effects on GPU).",
)
@click.option("--methods", metavar="A,B", help="Flax method names for an hk.MultiTransformed whose apply is a tuple.")
@click.option(
    "--init-seeds",
    type=click.IntRange(min=0),
    default=64,
    show_default=True,
    help="Seeds for initializer statistics (0 skips them).",
)
@click.option(
    "--no-probes",
    is_flag=True,
    help="Skip the probe cases (tiny inputs, perturbed parameters, one weight matrix scaled down at a time).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the full report as JSON.",
)
@click.pass_context
def check(
    ctx: click.Context,
    haiku_ref: str,
    flax_ref: str,
    specs: tuple[str, ...],
    kwargs_json: str | None,
    ctor_json: str | None,
    rtol: float | None,
    atol: float | None,
    devices: str,
    precision: str,
    methods: str | None,
    init_seeds: int,
    no_probes: bool,
    json_path: Path | None,
) -> None:
    """Prove a Flax port equals its Haiku original: parameters, outputs, gradients, state.

    This imports and runs both referenced modules: only check code you trust.
    The report (parameter table, per-device errors, culprit layer) goes to stderr.

    Exit status: 0 equivalent; 1 not equivalent (a parameter that does not map, a
    wrong shape, or an output/gradient/state/initializer beyond tolerance); 2 usage error.
    """
    _require_models(ctx, "check")
    from flaxify.equivalence import errors, refs, runner

    if json_path is not None and not json_path.absolute().parent.is_dir():
        raise click.BadParameter(f"folder {json_path.parent} does not exist", param_hint="--json")
    try:
        haiku_obj, flax_obj = refs.resolve_ref(haiku_ref), refs.resolve_ref(flax_ref)
        inputs = _inputs(specs)
        report = runner.compare(
            haiku_obj,
            flax_obj,
            inputs,
            kwargs=_json(kwargs_json, "--kwargs"),
            ctor=_json(ctor_json, "--ctor"),
            devices=devices,
            precision=precision,
            rtol=rtol,
            atol=atol,
            methods=methods.split(",") if methods else None,
            init_seeds=init_seeds,
            run_probes=not no_probes,
        )
    except errors.CheckUsageError as err:
        reporting.err(f"flaxify check: error: {err}")
        ctx.exit(EXIT_USAGE)
    reporting.err(report.format_table())
    if json_path is not None:
        _write_json(json_path, {"haiku_ref": haiku_ref, "flax_ref": flax_ref, **report.to_json()})
    ctx.exit(EXIT_OK if report.equivalent else EXIT_NOT_EQUIVALENT)


@click.command("convert-params", epilog=REF_HELP)
@click.argument("haiku_ref")
@click.argument("flax_ref")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    metavar="OUT",
    help="OUT.msgpack (flax.serialization) or an Orbax checkpoint directory.",
)
@_common
@click.option(
    "--allow-pickle", is_flag=True, help="Allow reading a pickled checkpoint (unpickling can run arbitrary code)."
)
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.pass_context
def convert_params(
    ctx: click.Context,
    haiku_ref: str,
    flax_ref: str,
    checkpoint: Path,
    out: Path,
    specs: tuple[str, ...],
    kwargs_json: str | None,
    ctor_json: str | None,
    rtol: float | None,
    atol: float | None,
    allow_pickle: bool,
    force: bool,
) -> None:
    """Convert a Haiku CHECKPOINT into the Flax model's variables, verified before writing.

    This imports and runs both referenced modules: only convert with code you trust.

    CHECKPOINT is .npz (keys 'params/<module>/<leaf>' and 'state/<module>/<leaf>';
    unprefixed keys are params) or a pickled dict with --allow-pickle. Nothing is
    written unless the converted variables reproduce the Haiku outputs on the
    inputs. Exit status: 0 written; 1 the trees do not map or outputs differ; 2 usage error.
    """
    _require_models(ctx, "convert-params")
    from flaxify.equivalence import convert, errors, refs

    if out.exists() and not force:
        reporting.err(f"flaxify convert-params: error: {out} already exists; pass --force to overwrite it")
        ctx.exit(EXIT_USAGE)
    try:
        haiku_obj, flax_obj = refs.resolve_ref(haiku_ref), refs.resolve_ref(flax_ref)
        result = convert.convert_checkpoint(
            haiku_obj,
            flax_obj,
            checkpoint,
            _inputs(specs),
            kwargs=_json(kwargs_json, "--kwargs"),
            ctor=_json(ctor_json, "--ctor"),
            allow_pickle=allow_pickle,
            rtol=rtol,
            atol=atol,
        )
        reporting.err(result.report.format_table())
        if not result.ok:
            why = (
                "the Flax model does not reproduce it"
                if not result.report.equivalent
                else "every output draws random numbers that could not be replayed into Flax, so no output was "
                "compared; pass --kwargs that turn sampling off (e.g. '{\"is_training\": false}')"
            )
            reporting.err(f"flaxify convert-params: {checkpoint} not converted: {why}; nothing written")
            ctx.exit(EXIT_NOT_EQUIVALENT)
        kind = convert.write_variables(result.variables, out, force=force)
    except errors.CheckUsageError as err:
        reporting.err(f"flaxify convert-params: error: {err}")
        ctx.exit(EXIT_USAGE)
    reporting.err(f"flaxify convert-params: wrote {out} ({kind})")
    ctx.exit(EXIT_OK)


def _require_models(ctx: click.Context, command: str) -> None:
    """Exits 2 with an install hint when jax, flax or dm-haiku is missing.

    ``migrate`` and ``lint`` need none of them, so they are an optional extra.
    """
    try:
        import flaxify.equivalence  # noqa: F401  (imports numpy, jax, flax, haiku)
    except ImportError as err:
        reporting.err(
            f"flaxify {command}: error: this command runs both models and needs jax, flax and dm-haiku: "
            f"{err} (install them with: pip install 'flaxify[models]')"
        )
        ctx.exit(EXIT_USAGE)


def _inputs(specs: tuple[str, ...]) -> list[Any] | dict[str, list[Any]]:
    """Parses ``--input`` values; ``METHOD=SPEC`` values group by method."""
    from flaxify.equivalence.spec import parse_spec

    per_method: dict[str, list[Any]] = {}
    plain: list[Any] = []
    for i, spec in enumerate(specs):
        match = _METHOD_SPEC.match(spec)
        if match and not Path(spec).exists():
            per_method.setdefault(match["method"], []).append(parse_spec(match["spec"], salt=i))
        else:
            plain.append(parse_spec(spec, salt=i))
    if per_method and plain:
        raise click.UsageError("mix of METHOD=SPEC and plain SPEC inputs; give every input a method or none")
    return per_method or plain


def _json(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option)
    return value


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
