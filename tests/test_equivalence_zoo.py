"""The model zoo: correct twins are equivalent and bit-exact on CPU; wrong twins fail, blaming their layer.

Cases are data: ``fixtures/zoo/<model>/case.json`` names the Haiku model, its
Flax twin, the inputs and kwargs, and each wrong twin with the culprit the
report must name.
"""

from __future__ import annotations

import json
from pathlib import Path

import flax.linen as nn
import haiku as hk
import pytest

from flaxify.equivalence import compare, parse_spec
from flaxify.equivalence.refs import resolve_ref

ZOO = Path(__file__).resolve().parent.parent / "fixtures" / "zoo"
CASES = sorted(p.parent.name for p in ZOO.glob("*/case.json"))
WRONG = [(name, w) for name in CASES for w in json.loads((ZOO / name / "case.json").read_text())["wrong"]]


def _case(name: str) -> dict:
    return json.loads((ZOO / name / "case.json").read_text())


def _inputs(spec):
    if isinstance(spec, dict):
        return {m: [parse_spec(s, salt=i) for i, s in enumerate(specs)] for m, specs in spec.items()}
    return [parse_spec(s, salt=i) for i, s in enumerate(spec)]


def _compare(name: str, flax_ref: str, **options):
    case = _case(name)
    haiku = resolve_ref(str(ZOO / name / case["haiku"]))
    flax = resolve_ref(str(ZOO / name / flax_ref))
    return compare(haiku, flax, _inputs(case["inputs"]), kwargs=case["kwargs"], devices="cpu", **options)


def test_zoo_covers_the_issue_list():
    assert {"mlp", "convnet", "embedding", "lstm", "batchnorm", "mha"} <= set(CASES)
    defects = " ".join(w["defect"] for _, w in WRONG)
    for defect in ("LayerNorm epsilon", "forget-gate", "transposed", "momentum"):
        assert defect in defects


@pytest.mark.parametrize("name", CASES)
def test_correct_twin_is_equivalent_and_bitexact(name):
    report = _compare(name, _case(name)["flax"], init_seeds=0)
    assert report.equivalent, report.format_table()
    assert report.bitexact, report.format_table()
    assert report.haiku_param_count == report.flax_param_count
    assert all(p.status in {"ok", "dropped"} for p in report.params)


@pytest.mark.parametrize(("name", "wrong"), WRONG, ids=[w["flax"].split(":")[0] for _, w in WRONG])
def test_wrong_twin_fails_and_names_the_culprit(name, wrong):
    report = _compare(name, wrong["flax"], init_seeds=0)
    assert not report.equivalent
    assert any(wrong["culprit"] in c for c in report.culprits), report.culprits
    assert report.to_json()["equivalent"] is False


def test_initializer_statistics_match_for_a_faithful_twin():
    report = _compare("mlp", "flax_model.py:net", init_seeds=64, run_probes=False)
    assert report.init and all(r.ok for r in report.init), report.format_table()


def test_initializer_statistics_flag_the_flax_lstm_forget_bias():
    # nn.OptimizedLSTMCell reproduces the outputs (to summation order: per-gate
    # matmuls instead of one fused one) once the +1 is folded into hf.bias, but
    # it initialises that bias at 0 where Haiku effectively starts at 1: training
    # from scratch would differ, and the check says where.
    report = _compare("lstm", "flax_lstmcell.py:net", init_seeds=64, run_probes=False)
    assert report.mapping_ok and all(c.ok for c in report.checks), report.format_table()
    failing = {r.flax for r in report.init if not r.ok}
    assert "params/lstm/hf/bias" in failing
    assert not report.equivalent


def test_batchnorm_debiased_ema_is_reported_not_hidden():
    report = _compare("batchnorm", "flax_model.py:net", init_seeds=0, run_probes=False)
    assert any("debiased" in n for n in report.notes)
    state = [c for c in report.checks if c.phase == "state"]
    assert state and all(c.ok for c in state)
    assert any(p.status == "dropped" and "hidden" in p.haiku for p in report.params)


def test_dropout_training_mode_is_reported_as_stochastic():
    report = _compare("mlp", "flax_model.py:net", init_seeds=0, run_probes=False)
    assert [c.status for c in report.checks if c.phase == "train"] == ["stochastic"]


def test_probes_expose_a_wrong_epsilon_more_than_random_inputs():
    report = _compare("convnet", "flax_wrong_epsilon.py:net", init_seeds=0)
    random = max(d.max_abs for c in report.checks if c.phase == "eval" for d in c.leaves)
    probed = max(d.max_abs for c in report.checks if c.phase == "probe" for d in c.leaves)
    assert probed > 10 * random


def test_hk_module_subclass_with_ctor():
    haiku = resolve_ref(str(ZOO / "autoencoder" / "haiku_model.py:AutoEncoder"))
    flax = resolve_ref(str(ZOO / "autoencoder" / "flax_model.py:AutoEncoder"))
    report = compare(
        haiku, flax, [parse_spec("f32[4,6]")], ctor={"latent": 3}, devices="cpu", init_seeds=0, run_probes=False
    )
    assert report.equivalent and report.bitexact, report.format_table()


def test_multi_transform_with_unnamed_methods_pairs_flax_methods_in_order():
    haiku = resolve_ref(str(ZOO / "autoencoder" / "haiku_model.py:net_tuple"))
    flax = resolve_ref(str(ZOO / "autoencoder" / "flax_model.py:net"))
    inputs = {"encode": [parse_spec("f32[4,6]")], "decode": [parse_spec("f32[4,3]")]}
    report = compare(haiku, flax, inputs, devices="cpu", init_seeds=0, run_probes=False)
    assert report.equivalent and report.bitexact, report.format_table()
    assert {c.method for c in report.checks} == {"encode", "decode"}


def test_initializer_shape_not_just_std_is_compared():
    # An untruncated normal with the std of Haiku's truncated normal: same mean
    # and std, different distribution (kurtosis 3.0 vs ~2.37).
    class Normal(nn.Module):
        @nn.compact
        def __call__(self, x):
            init = nn.initializers.normal(0.87962566103423978 / 64**0.5)
            return nn.Dense(64, kernel_init=init, name="linear")(x)

    net = hk.without_apply_rng(hk.transform(lambda x: hk.Linear(64)(x)))
    report = compare(net, Normal(), [parse_spec("f32[2,64]")], devices="cpu", run_probes=False)
    assert report.outputs_equivalent and not report.init_equivalent
    assert [r.flax for r in report.init if not r.ok] == ["params/linear/kernel"]
