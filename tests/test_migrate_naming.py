"""Haiku's naming rules, replayed statically (migrate/naming.py), against Haiku itself."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import pytest

from flaxify.migrate.naming import Construction, ScopeNamer, camel_to_snake, name_and_number

CLASSES = [
    hk.Linear, hk.Conv1D, hk.Conv2D, hk.Conv3D, hk.Conv2DTranspose, hk.DepthwiseConv2D,
    hk.LayerNorm, hk.GroupNorm, hk.RMSNorm, hk.Embed, hk.nets.MLP, hk.nets.ResNet18,
    hk.nets.MobileNetV1, hk.VanillaRNN, hk.MultiHeadAttention, hk.Conv2DLSTM, hk.BatchNorm,
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_default_names_match_haiku(cls: type) -> None:
    """camel_to_snake agrees with the name Haiku itself gives a fresh instance."""
    seen: dict[str, str] = {}

    def build() -> None:
        # Only hk.Module.__init__ runs: it names the module from its class.
        module = object.__new__(cls)
        hk.Module.__init__(module)
        seen["haiku"] = module.module_name

    hk.transform(build).init(jax.random.PRNGKey(0))
    assert camel_to_snake(cls.__name__) == seen["haiku"]


@pytest.mark.parametrize(
    ("name", "split"), [("linear", ("linear", None)), ("linear_3", ("linear", 3)), ("linear_0", ("linear", 0)), ("a_01", ("a_01", None))]
)
def test_name_and_number(name: str, split: tuple[str, int | None]) -> None:
    assert name_and_number(name) == split


def _haiku_names(plan: list[str | None]) -> list[str]:
    """Builds Linears in one scope as the plan says (None: auto name) and reads Haiku's names."""

    def forward(x: jnp.ndarray) -> None:
        for explicit in plan:
            hk.Linear(1, name=explicit)(x)

    params = hk.transform(forward).init(jax.random.PRNGKey(0), jnp.ones((1, 1)))
    return list(params)


@pytest.mark.parametrize(
    "plan",
    [[None, None, None], [None, "linear_5", None], ["proj", "proj", None], ["linear_0", None]],
    ids=["auto", "explicit-number-advances", "explicit-repeated", "explicit-zero"],
)
def test_scope_namer_matches_haiku(plan: list[str | None]) -> None:
    namer = ScopeNamer()
    for key, explicit in enumerate(plan):
        namer.add(Construction(key, explicit or "linear", explicit is not None, dynamic=False))
    names = namer.names()
    assert [names[key] for key in range(len(plan))] == _haiku_names(plan)


def test_dynamic_constructions_get_no_static_name() -> None:
    namer = ScopeNamer()
    namer.add(Construction(0, "linear", False, dynamic=False))
    namer.add(Construction(1, "linear", False, dynamic=True))
    namer.add(Construction(2, "conv2_d", False, dynamic=False))
    assert namer.names() == {2: "conv2_d"}
