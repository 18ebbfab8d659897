"""`flaxify check` as a user runs it: exit codes, the table on stderr, --json, and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from flaxify.cli import main

ZOO = Path(__file__).resolve().parent.parent / "fixtures" / "zoo"
FAST = ["--init-seeds", "0", "--no-probes", "--devices", "cpu"]


def _check(capsys, *args: str) -> tuple[int, str]:
    code = main(["check", *args])
    return code, capsys.readouterr().err


def test_help_warns_that_user_code_runs(capsys):
    assert main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "imports and runs" in out and "SPEC" in out


def test_correct_migration_exits_0_with_bitexact_json(tmp_path, capsys):
    report = tmp_path / "report.json"
    code, err = _check(
        capsys,
        f"{ZOO}/mlp/haiku_model.py:net",
        f"{ZOO}/mlp/flax_model.py:net",
        "--input",
        "f32[4,6]",
        "--kwargs",
        '{"is_training": false}',
        "--json",
        str(report),
        "--devices",
        "cpu",
    )
    assert code == 0, err
    assert "EQUIVALENT (outputs bit-exact: yes" in err
    data = json.loads(report.read_text())
    assert data["equivalent"] is True and data["bitexact"] is True
    assert all(leaf["bitexact"] for c in data["checks"] if c["phase"] == "eval" for leaf in c["leaves"])
    assert data["haiku_param_count"] == data["flax_param_count"] == 284


def test_wrong_epsilon_exits_1_and_blames_the_layer_norm(capsys):
    code, err = _check(
        capsys,
        f"{ZOO}/convnet/haiku_model.py:net",
        f"{ZOO}/convnet/flax_wrong_epsilon.py:net",
        "--input",
        "f32[2,8,8,3]",
        *FAST,
    )
    assert code == 1
    assert "culprit: layer_norm" in err and "NOT EQUIVALENT" in err


def test_shape_mismatch_exits_1_naming_path_and_both_shapes(capsys):
    code, err = _check(
        capsys,
        f"{ZOO}/mlp/haiku_model.py:net",
        f"{ZOO}/mlp/flax_wrong_transposed.py:net",
        "--input",
        "f32[4,6]",
        "--kwargs",
        '{"is_training": false}',
        *FAST,
    )
    assert code == 1
    assert "mlp/~/linear_1/w" in err and "(16, 8)" in err and "(8, 16)" in err


def test_package_module_references(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ZOO / "embedding"))
    for name in ("haiku_model", "flax_model"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    code, err = _check(capsys, "haiku_model:net", "flax_model:net", "--input", "i32[2,6]:0..50", *FAST)
    assert code == 0, err


@pytest.mark.parametrize(
    ("haiku_ref", "flax_ref", "spec", "message"),
    [
        ("nowhere.py:net", "mlp/flax_model.py:net", "f32[4,6]", "nowhere.py: no such file"),
        ("mlp/haiku_model.py:nope", "mlp/flax_model.py:net", "f32[4,6]", "has no name 'nope'"),
        ("mlp/haiku_model.py:net", "mlp/flax_model.py:haiku_linear_init", "f32[4,6]", "expected a flax.linen Module"),
        ("mlp/haiku_model.py:net", "mlp/flax_model.py:net", "f32[4;6]", "bad input SPEC"),
        ("mlp/haiku_model.py", "mlp/flax_model.py:net", "f32[4,6]", "bad reference"),
        ("no_such_package_xyz:net", "mlp/flax_model.py:net", "f32[4,6]", "cannot import 'no_such_package_xyz'"),
    ],
)
def test_bad_input_exits_2_naming_what_was_wrong(capsys, monkeypatch, haiku_ref, flax_ref, spec, message):
    monkeypatch.chdir(ZOO)
    code, err = _check(capsys, haiku_ref, flax_ref, "--input", spec, "--kwargs", '{"is_training": false}', *FAST)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_model_that_raises_exits_2(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("import haiku as hk\n\ndef forward(x):\n    raise RuntimeError('boom in forward')\n")
    code, err = _check(capsys, f"{broken}:forward", f"{ZOO}/mlp/flax_model.py:net", "--input", "f32[4,6]", *FAST)
    assert code == 2
    assert "Haiku init raised RuntimeError: boom in forward" in err


MULTI_INIT = """
import flax.linen as nn
import haiku as hk


class Pair(hk.Module):
    def encode(self, x):
        return hk.Linear(3)(x)

    def decode(self, z, scale):
        return hk.Linear(2)(z) * scale

    def __call__(self, x, scale):
        return self.decode(self.encode(x), scale)


def fns():
    m = Pair()
    return (lambda x, scale: m(x, scale)), {"encode": m.encode}


net = hk.without_apply_rng(hk.multi_transform(fns))


class FlaxPair(nn.Module):
    @nn.compact
    def encode(self, x):
        return nn.Dense(3)(x)


flax_net = FlaxPair()
"""


def test_multi_transform_init_fed_a_methods_inputs_says_to_give_init_inputs(tmp_path, capsys):
    model = tmp_path / "pair.py"
    model.write_text(MULTI_INIT)
    code, err = _check(capsys, f"{model}:net", f"{model}:flax_net", "--input", "encode=f32[2,4]", *FAST)
    assert code == 2
    assert "Haiku init (given the inputs of 'encode'; if init takes others, add --input init=SPEC) raised" in err


def test_bad_kwargs_json_exits_2(capsys):
    code, err = _check(
        capsys,
        f"{ZOO}/mlp/haiku_model.py:net",
        f"{ZOO}/mlp/flax_model.py:net",
        "--input",
        "f32[4,6]",
        "--kwargs",
        "{is_training: no}",
        *FAST,
    )
    assert code == 2
    assert "--kwargs" in err


def test_multi_method_inputs_per_method(capsys):
    code, err = _check(
        capsys,
        f"{ZOO}/autoencoder/haiku_model.py:net",
        f"{ZOO}/autoencoder/flax_model.py:net",
        "--input",
        "encode=f32[4,6]",
        "--input",
        "decode=f32[4,3]",
        *FAST,
    )
    assert code == 0, err
    assert " encode " in err and " decode " in err


def test_hk_module_class_with_ctor(capsys):
    code, err = _check(
        capsys,
        f"{ZOO}/autoencoder/haiku_model.py:AutoEncoder",
        f"{ZOO}/autoencoder/flax_model.py:AutoEncoder",
        "--input",
        "f32[4,6]",
        "--ctor",
        '{"latent": 3}',
        *FAST,
    )
    assert code == 0, err
    assert "hk.Module subclass AutoEncoder" in err


def test_plain_haiku_function_is_transformed_for_the_user(capsys):
    code, err = _check(
        capsys,
        f"{ZOO}/mlp/haiku_model.py:forward",
        f"{ZOO}/mlp/flax_model.py:Forward",
        "--input",
        "f32[4,6]",
        "--kwargs",
        '{"is_training": false}',
        *FAST,
    )
    assert code == 0, err


def test_ctor_per_side(capsys):
    code, err = _check(
        capsys,
        f"{ZOO}/autoencoder/haiku_model.py:AutoEncoder",
        f"{ZOO}/autoencoder/flax_model.py:AutoEncoder",
        "--input",
        "f32[4,6]",
        "--ctor",
        '{"haiku": {"latent": 3}, "flax": {"latent": 3}}',
        *FAST,
    )
    assert code == 0, err
