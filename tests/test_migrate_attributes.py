"""Reads of Haiku layer attributes (migrate/module_attributes.py): exact rewrites, TODOs and no-ops.

Each case is the body of ``Head.__call__`` (``self.proj = hk.Linear(8)`` and
``self.conv = hk.Conv2D(4, 3)`` built in ``__init__``, ``other`` an unknown
argument); the migrated method must contain every ``expected`` line and, for
TODO cases, the marker naming the attribute. The bit-exact cases live in
fixtures/migrate/attributes/ (run by tests/test_migrate_fixtures.py).
"""

from __future__ import annotations

import textwrap

import pytest

from flaxify.migrate import migrate_source

TEMPLATE = """\
import haiku as hk


class Head(hk.Module):
    def __init__(self, name=None):
        super().__init__(name=name)
        self.proj = hk.Linear(8)
        self.conv = hk.Conv2D(4, 3)

    def __call__(self, x, other):
{body}
"""


def _migrate(body: str) -> str:
    source = TEMPLATE.format(body=textwrap.indent(textwrap.dedent(body), " " * 8))
    return migrate_source(source.encode(), "head.py").source.decode()


KERNEL = 'self.proj.get_variable("params", "kernel").shape[0]'

EXACT = [
    ("return self.proj(x) / self.proj.output_size", "return self.proj(x) / self.proj.features"),
    ("y = self.proj(x)\nreturn y * self.proj.input_size", f"return y * {KERNEL}"),
    ("return self.proj(x) + self.proj.input_size", f"return self.proj(x) + {KERNEL}"),
    ("if self.proj.with_bias:\n    return x", "if self.proj.use_bias:"),
    ("return self.conv(x) * self.conv.output_channels", "return self.conv(x) * self.conv.features"),
    ("return self.conv.kernel_shape", "return self.conv.kernel_size"),
    # The call certainly ran before the branch that reads the size.
    ("y = self.proj(x)\nif y.ndim:\n    return self.proj.input_size", f"    return {KERNEL}"),
]


@pytest.mark.parametrize(("body", "expected"), EXACT, ids=[e[1] for e in EXACT])
def test_exact_rewrite(body: str, expected: str) -> None:
    out = _migrate(body)
    assert expected in out
    assert "TODO(flaxify)" not in out


TODOS = [
    # Before the call, or in the call's own arguments, or after a call that may not have run.
    ("n = self.proj.input_size\nreturn self.proj(x) * n", "hk.Linear.input_size"),
    ("return self.proj(x * self.proj.input_size)", "hk.Linear.input_size"),
    ("if x.ndim:\n    x = self.proj(x)\nreturn self.proj.input_size", "hk.Linear.input_size"),
    ("y = self.proj(x) if x.ndim else x\nreturn self.proj.input_size", "hk.Linear.input_size"),
    ("return self.proj.module_name", "hk.Linear.module_name"),
    ("return self.proj.params_dict()", "hk.Linear.params_dict"),
    ("return self.proj.w_init", "hk.Linear.w_init"),
    ("return self.conv.stride", "hk.ConvND.stride"),
    ("self.proj.output_size = 3\nreturn x", "hk.Linear.output_size"),
]


@pytest.mark.parametrize(("body", "construct"), TODOS, ids=[t[0].splitlines()[0] for t in TODOS])
def test_todo_keeps_the_read(body: str, construct: str) -> None:
    out = _migrate(body)
    assert f"# TODO(flaxify): {construct}: " in out
    for line in textwrap.dedent(body).splitlines():
        assert line.strip() in out  # the statement stays as written


NOOPS = [
    "return other.output_size",  # not provably a layer
    "return self.proj.features",  # not a Haiku attribute
    "return self.proj.name",  # Linen's name is Haiku's: flaxify passes it as name=
]


@pytest.mark.parametrize("body", NOOPS)
def test_noop(body: str) -> None:
    out = _migrate(body)
    assert textwrap.dedent(body).strip() in out
    assert "TODO(flaxify)" not in out


def test_reassigned_attribute_is_not_a_layer() -> None:
    source = TEMPLATE.format(body="        return self.proj.output_size").replace(
        "self.conv = hk.Conv2D(4, 3)", "self.proj = hk.Linear(4)"
    )
    out = migrate_source(source.encode(), "head.py").source.decode()
    assert "return self.proj.output_size" in out


def test_local_layer_in_a_transformed_function() -> None:
    source = textwrap.dedent(
        """\
        import haiku as hk


        def forward(x):
            lin = hk.Linear(3)
            y = lin(x)
            return y * lin.output_size + lin.input_size


        net = hk.transform(forward)
        """
    )
    out = migrate_source(source.encode(), "f.py").source.decode()
    assert 'return y * lin.features + lin.get_variable("params", "kernel").shape[0]' in out


def test_file_with_its_own_flax_layers_gets_todo_not_rewrite() -> None:
    source = TEMPLATE.format(body="        return self.proj(x) / self.proj.output_size").replace(
        "import haiku as hk\n", "import flax.linen as nn\nimport haiku as hk\n"
    )
    out = migrate_source(source.encode(), "head.py").source.decode()
    assert "cannot prove self.proj is the layer it built from an hk.Linear" in out
    assert "return self.proj(x) / self.proj.output_size" in out


def test_second_run_changes_nothing() -> None:
    once = _migrate("y = self.proj(x)\nreturn y / self.proj.output_size + self.proj.module_name.count('/')")
    again = migrate_source(once.encode(), "head.py")
    assert not again.changed


def test_elif_test_does_not_run_on_every_path() -> None:
    out = _migrate("if x.ndim:\n    return x\nelif self.proj(x).ndim:\n    return x\nreturn self.proj.input_size")
    assert "# TODO(flaxify): hk.Linear.input_size: " in out


def test_lambda_parameter_shadows_a_layer() -> None:
    source = textwrap.dedent(
        """\
        import haiku as hk


        def forward(x, other):
            lin = hk.Linear(3)
            size = (lambda lin: lin.output_size)(other)
            return lin(x) * size * lin.output_size


        net = hk.transform(forward)
        """
    )
    out = migrate_source(source.encode(), "f.py").source.decode()
    assert "size = (lambda lin: lin.output_size)(other)" in out
    assert "return lin(x) * size * lin.features" in out


def test_collection_changed_after_it_was_built_is_not_trusted() -> None:
    source = TEMPLATE.format(body="        return [layer.output_size for layer in self.stack]").replace(
        "self.conv = hk.Conv2D(4, 3)", "self.stack = [hk.Linear(2)]\n        self.stack.append(hk.Linear(3))"
    )
    out = migrate_source(source.encode(), "head.py").source.decode()
    assert "[layer.output_size for layer in self.stack]" in out


HELPER_CASES = [
    # (constructor in __init__, read in __call__, expected line)
    ("hk.Conv2DLSTM([4, 4], 3, 3)", "len(self.layer.input_shape)", "len(tuple(self.layer.input_shape))"),
    ("hk.ExponentialMovingAverage(0.9)", "self.layer.initialize([3])", "self.layer.initialize([3])"),
    ("hk.GRU(4)", "self.layer.hidden_size", "self.layer.hidden_size"),
    ("hk.DepthwiseConv2D(2, 3)", "self.layer.stride", "# TODO(flaxify): hk.DepthwiseConv2D.stride: "),
    ("hk.nets.MLP([3, 2])", "self.layer.layers", "# TODO(flaxify): hk.nets.MLP.layers: "),
]


@pytest.mark.parametrize(("ctor", "read", "expected"), HELPER_CASES, ids=[c[0] for c in HELPER_CASES])
def test_emitted_helper_attributes(ctor: str, read: str, expected: str) -> None:
    source = TEMPLATE.format(body=f"        return {read}").replace("hk.Conv2D(4, 3)", ctor).replace(
        "self.conv =", "self.layer ="
    )
    out = migrate_source(source.encode(), "head.py").source.decode()
    assert expected in out
    assert (expected.startswith("#")) == ("TODO(flaxify)" in out)


OWN_MODULES = textwrap.dedent(
    """\
    import haiku as hk


    class Block(hk.Module):
        def __call__(self, x):
            print(self.module_name)
            return hk.Linear(3)(x)


    class Tagged(hk.Module):
        def module_name_upper(self):
            return self.module_name.upper()

        def params_dict(self):
            return {}

        def __call__(self, x):
            return x


    class Net(hk.Module):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.block = Block()
            self.tagged = Tagged()

        def __call__(self, x):
            return self.block(x), self.block.params_dict(), self.tagged.params_dict()


    def forward(x):
        return Net()(x)


    net = hk.transform(forward)
    """
)


def test_hk_module_attributes_of_the_files_own_modules() -> None:
    out = migrate_source(OWN_MODULES.encode(), "own.py").source.decode()
    marked = [line.strip() for line in out.splitlines() if line.strip().startswith("# TODO(flaxify): hk.Module.")]
    assert [m.split(":")[1].strip() for m in marked] == ["hk.Module.module_name", "hk.Module.params_dict"]
    assert "(self.name) and its scope path (self.path)" in marked[0]
    assert "read self.block.variables['params']" in marked[1]
    # Tagged defines params_dict itself: its reads are its own business.
    assert "return self.module_name.upper()" in out
