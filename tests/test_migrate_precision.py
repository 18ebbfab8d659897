"""hk.mixed_precision policies (migrate/precision.py): exact Linen forms, checked against real Haiku, and honest TODOs.

Haiku policies are process-wide, so the fixtures of ``fixtures/migrate/precision`` carry no
``# flaxify-check:`` header (that test would leave them set for every later fixture); the
bit-exact checks here set them (importing the file, or running its ``main()``) and clear them.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import jax
import jax.numpy as jnp
import pytest

from flaxify.migrate import migrate_source

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "migrate" / "precision"
CONSTRUCT = "hk.mixed_precision.set_policy"


@pytest.fixture
def policies_cleared() -> Iterator[None]:
    """Clears every policy a fixture may set, whatever the test's outcome."""
    import haiku as hk

    yield
    for cls in (hk.Linear, hk.Conv1D, hk.Conv2D, hk.Conv3D, hk.ConvND, hk.BatchNorm, hk.LayerNorm):
        hk.mixed_precision.clear_policy(cls)


def _load(path: Path, label: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_flaxify_precision_{label}_{path.stem.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _outputs(haiku_net, flax_net, x: jax.Array, kwargs: dict) -> tuple:  # type: ignore[no-untyped-def]
    """Each side's output from its own init: the dtypes (and shapes) must agree, not only the values."""
    key = jax.random.PRNGKey(0)
    if hasattr(haiku_net, "init") and "is_training" in kwargs:
        params, state = haiku_net.init(key, x, is_training=True)  # Haiku's BatchNorm needs a training init
        ours = haiku_net.apply(params, state, None, x, **kwargs)[0]
        theirs = flax_net.apply(flax_net.init(key, x, is_training=True), x, **kwargs, mutable=["batch_stats"])[0]
    else:
        ours = haiku_net.apply(haiku_net.init(key, x), x)
        theirs = flax_net.apply(flax_net.init(key, x), x)
    return ours, theirs


CHECKED = [
    # (fixture, transformed name, input spec, kwargs, function the Haiku file runs first)
    ("layer_policies", "net", "f32[2,6,6,3]", {"is_training": True}, None),
    ("layer_policies", "net", "f32[2,6,6,3]", {"is_training": False}, None),
    ("main_policies", "net", "f32[2,8]", {}, "main"),
    ("imagenet_style", "forward", "f32[2,8,8,3]", {"is_training": True}, "main"),
    ("imagenet_style", "forward", "f32[2,8,8,3]", {"is_training": False}, "main"),
]


@pytest.mark.parametrize(("case", "name", "spec", "kwargs", "setup"), CHECKED)
def test_policy_fixture_is_bit_exact(case: str, name: str, spec: str, kwargs: dict, setup: str | None, policies_cleared) -> None:  # type: ignore[no-untyped-def]
    from flaxify.equivalence import compare, parse_spec

    before = FIXTURES / f"{case}.before.py"
    haiku_module = _load(before, "hk")
    if setup is not None:
        getattr(haiku_module, setup)()
    haiku_net = getattr(haiku_module, name)
    flax_net = getattr(_load(before.with_name(f"{case}.after.py"), "fx"), name)
    report = compare(haiku_net, flax_net, [parse_spec(spec)], kwargs=kwargs or None, devices="cpu", init_seeds=0)
    assert report.equivalent, report.format_table()
    assert report.bitexact, report.format_table()
    ours, theirs = _outputs(haiku_net, flax_net, jnp.ones(parse_spec(spec).shape), kwargs)
    assert ours.dtype == theirs.dtype and ours.dtype != jnp.float64, (ours.dtype, theirs.dtype)


def _program(policies: str, body: str, extra: str = "") -> str:
    """A module ``M`` whose ``__call__`` returns ``body``, after ``policies`` (module-level statements)."""
    return (
        "import haiku as hk\nimport jax.numpy as jnp\nimport jmp\n\n"
        f"{policies}\n\n\nclass M(hk.Module):\n    def __call__(self, x, is_training=True):\n        return {body}\n\n\n"
        f"{extra}net = hk.transform_with_state(lambda x: M()(x))\n"
    )


def _migrate(source: str) -> tuple[str, list[str]]:
    result = migrate_source(source.encode(), "case.py")
    assert not migrate_source(result.source, "case.py").changed  # a fixed point either way
    return result.source.decode(), [t.reason for t in result.todos if t.construct == CONSTRUCT]


P = "hk.mixed_precision.set_policy"
EXACT = [
    # Conv2D's policy reaches rank-2 nn.Conv layers only (Conv1D's has no policy).
    (
        _program(f'{P}(hk.Conv2D, jmp.get_policy("p=f32,c=bf16"))', "hk.Conv1D(4, 3)(hk.Conv2D(4, 3)(x)[:, 0])"),
        ['nn.Conv(4, (3, 3), kernel_init=HAIKU_DEFAULT_KERNEL_INIT, dtype=jnp.bfloat16, param_dtype=jnp.float32, name="conv2_d")(x)',
         'nn.Conv(4, (3,), kernel_init=HAIKU_DEFAULT_KERNEL_INIT, name="conv1_d")'],
    ),
    # output != compute: a cast on the layer's call.
    (
        _program(f'{P}(hk.Linear, jmp.get_policy("p=f32,c=f16,o=f32"))', "hk.Linear(4)(x)"),
        ['dtype=jnp.float16, param_dtype=jnp.float32, name="linear")(x).astype(jnp.float32)'],
    ),
    # hk.BatchNorm with params == compute: casts around the emitted helper's call (a sum is parenthesised).
    (
        _program(f'{P}(hk.BatchNorm, jmp.get_policy("p=bf16,c=bf16,o=f32"))', "hk.BatchNorm(True, True, 0.9)(x + 1.0, is_training)"),
        ['BatchNorm(True, True, 0.9, name="batch_norm")((x + 1.0).astype(jnp.bfloat16), is_training).astype(jnp.float32)'],
    ),
    # In a function: a named policy and its binding go; a body left empty gets `pass`.
    (
        _program("", "hk.Linear(4)(x)", extra=f'def setup_policies():\n    policy = jmp.get_policy("bf16")\n    {P}(hk.Linear, policy)\n\n\n'),
        ["def setup_policies():\n    pass\n", "dtype=jnp.bfloat16, param_dtype=jnp.bfloat16"],
    ),
]


MLP = "class Mlp(hk.Module):\n    def __call__(self, x):\n        return {}\n\n\n"
MLP_POLICY = f'{P}(Mlp, jmp.get_policy("p=f32,c=bf16,o=f32"))\n'
EXACT.append(
    # A module class's policy: its input cast first thing, dtypes on the layers inside, its result cast.
    (
        _program("", "Mlp()(x)", extra=MLP.format("jax.nn.relu(hk.Linear(4)(x)) / 2") + MLP_POLICY).replace("import jmp", "import jax\nimport jmp"),
        ["    def __call__(self, x):\n        x = x.astype(jnp.bfloat16)\n",
         'return (jax.nn.relu(nn.Dense(4, kernel_init=HAIKU_DEFAULT_KERNEL_INIT, dtype=jnp.bfloat16, param_dtype=jnp.float32, name="linear")(x)) / 2).astype(jnp.float32)'],
    )
)


@pytest.mark.parametrize(("source", "fragments"), EXACT)
def test_policy_becomes_dtypes_and_casts(source: str, fragments: list[str]) -> None:
    out, reasons = _migrate(source)
    assert reasons == [] and "set_policy" not in out and "jmp" not in out, out
    for fragment in fragments:
        assert fragment in out, out


MODULE_POLICY = f'{P}(M, jmp.get_policy("bf16"))'
TODOS = [
    (_program(MODULE_POLICY, "hk.Linear(4)(x)").replace(MODULE_POLICY + "\n\n\nclass M", "class M").replace("\n\n\nnet", f"\n\n\n{MODULE_POLICY}\nnet"), "a module class of this file"),
    (_program(f'{P}(hk.ConvND, jmp.get_policy("bf16"))', "hk.ConvND(2, 4, 3)(x)"), "hk.ConvND shares nn.Conv"),
    (_program(f'{P}(hk.Conv2D, jmp.get_policy("bf16"))', "hk.Conv2D(4, 3)(hk.ConvND(2, 4, 3)(x))"), "may come from hk.ConvND"),
    (_program(f'{P}(hk.BatchNorm, jmp.get_policy("p=f32,c=bf16"))', "hk.BatchNorm(True, True, 0.9)(x, True)"), "params float32 differ from compute bfloat16"),
    (_program(f'{P}(hk.BatchNorm, jmp.get_policy("f32"))', "hk.BatchNorm(False, False, 0.9)(x, True, scale=x)"), "scale/offset"),
    (_program(f'{P}(hk.LayerNorm, jmp.get_policy("bf16"))', "hk.LayerNorm(-1, True, True)(x)"), "reduces in float32"),
    (_program(f'{P}(hk.Linear, jmp.get_policy("p=f32,c=bf16,o=f32"))', "(lin := hk.Linear(4))(x) + lin(x)"), "bound to a name"),
    (_program(f'{P}(hk.Linear, jmp.get_policy("bf16"))\n{P}(hk.Linear, jmp.get_policy("f32"))', "hk.Linear(4)(x)"), "several policies"),
    (
        _program("", "hk.Linear(4)(x)", extra=f'def main():\n    print("start")\n    {P}(hk.Linear, jmp.get_policy("bf16"))\n\n\n'),
        "runs after other code in main()",
    ),
    (
        _program("", "hk.Linear(4)(x)", extra=f'def main(flag):\n    policy = jmp.get_policy(flag)\n    {P}(hk.Linear, policy)\n\n\n'),
        "literal dtypes",
    ),
]


TODOS += [
    (_program("", "Mlp()(x)", extra=MLP.format(body) + MLP_POLICY), reason)
    for body, reason in [
        ("hk.Linear(4)(x) + jnp.ones([4])", "it calls jnp.ones"),
        ("hk.Linear(4)(x.astype(\"float32\"))", "it calls x.astype"),
        ("hk.LayerNorm(-1, True, True)(x)", "it calls nn.LayerNorm"),
        ("hk.Linear(4)(x), x", "returns a tuple"),
    ]
]
FLAGGED = "class Mlp(hk.Module):\n    def __call__(self, x, is_training{}):\n        return {}\n\n\n"
TODOS += [
    (_program("", "Mlp()(x, True)", extra=FLAGGED.format(default, body) + policies + MLP_POLICY), reason)
    for default, body, policies, reason in [
        ("", "hk.Linear(4)(x) * is_training if is_training else x", "", "read both as an array and as a flag"),
        ("=0.5", "hk.Linear(4)(x) if is_training else x", "", "has a default (0.5)"),
        # A policy on hk.Linear that stays TODO would govern the Dense inside (the innermost wins).
        ("", "hk.Linear(4)(x) if is_training else x", f'if True:\n    {P}(hk.Linear, jmp.get_policy("f32"))\n', "may change the policy"),
    ]
]
TODOS.append(
    (_program(f'{P}(hk.Linear, jmp.get_policy("bf16"))', "hk.Linear(4)(x)", extra="hk.mixed_precision.clear_policy(hk.Linear)\n"), "may change the policy")
)


@pytest.mark.parametrize(("source", "reason"), TODOS)
def test_other_policies_stay_todo_saying_why(source: str, reason: str) -> None:
    out, reasons = _migrate(source)
    assert any(reason in r for r in reasons), reasons
    assert "set_policy(" in out and "param_dtype=jnp" not in out and ".astype(jnp." not in out, out


def test_a_named_policy_read_by_a_todo_keeps_its_binding() -> None:
    extra = f'def main():\n    policy = jmp.get_policy("bf16")\n    {P}(hk.Linear, policy)\n    {P}(hk.LayerNorm, policy)\n\n\n'
    out, reasons = _migrate(_program("", "hk.LayerNorm(-1, True, True)(hk.Linear(4)(x))", extra=extra))
    assert len(reasons) == 1 and "reduces in float32" in reasons[0]
    assert 'policy = jmp.get_policy("bf16")' in out and "set_policy(hk.Linear" not in out
    assert "dtype=jnp.bfloat16, param_dtype=jnp.bfloat16" in out


def test_a_module_policy_needs_inner_policies_to_return_its_compute_dtype() -> None:
    """BatchNorm's own policy still applies (it is the innermost); the module's stays TODO."""
    extra = FLAGGED.format("", "hk.BatchNorm(True, True, 0.9)(hk.Linear(4)(x), is_training)")
    out, reasons = _migrate(_program("", "Mlp()(x, True)", extra=extra + f'{P}(hk.BatchNorm, jmp.get_policy("f32"))\n' + MLP_POLICY))
    assert len(reasons) == 1 and "whose output float32 is not the compute dtype bfloat16" in reasons[0], reasons
    assert "(nn.Dense(4, kernel_init=HAIKU_DEFAULT_KERNEL_INIT, name=\"linear\")(x).astype(jnp.float32), is_training)" in out
    assert "set_policy(Mlp" in out and "set_policy(hk.BatchNorm" not in out
