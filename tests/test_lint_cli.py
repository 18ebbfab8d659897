"""``flaxify lint`` as a user runs it: formats, exit codes, noqa, config, --fix, cache, parse errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flaxify.cli import main

BAD = "import jax\n\n@jax.jit\ndef f(x):\n    print('x', x)\n    return x\n"
CLEAN = "import jax\n\n@jax.jit\ndef f(x):\n    return x * 2\n"


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["lint", "--no-cache", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_text_output_and_exit_codes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.py").write_text(BAD)
    (project / "good.py").write_text(CLEAN)
    code, out, err = _run(["bad.py"], capsys)
    assert code == 1
    assert out.strip().startswith("bad.py:5:5: JX101 `print` of a traced value")
    assert "Found 1 finding" in err
    assert _run(["good.py"], capsys)[0] == 0
    assert _run(["bad.py", "--exit-zero"], capsys)[0] == 0
    assert _run(["missing.py"], capsys)[0] == 2
    code, _, err = _run(["bad.py", "--select", "JX999"], capsys)
    assert code == 2 and "unknown rule code" in err


def test_json_sarif_github(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.py").write_text(BAD)
    _, out, _ = _run(["bad.py", "--format", "json"], capsys)
    [item] = json.loads(out)
    assert {k: item[k] for k in ("path", "line", "column", "end_line", "end_column", "code")} == {
        "path": "bad.py", "line": 5, "column": 5, "end_line": 5, "end_column": 18, "code": "JX101"}
    assert item["fix"]["applicability"] == "safe"
    assert item["fix"]["edits"][0]["content"] == "jax.debug.print('x {x}', x=x)"
    _, out, _ = _run(["bad.py", "--format", "sarif"], capsys)
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    [result] = run["results"]
    assert rule_ids[result["ruleIndex"]] == result["ruleId"] == "JX101"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 5
    _, out, _ = _run(["bad.py", "--format", "github"], capsys)
    assert out.startswith("::error file=bad.py,line=5,col=5,endLine=5,endColumn=18,title=flaxify (JX101)::JX101 ")
    _, out, _ = _run(["--format", "json", "bad.py", "--select", "JX2"], capsys)
    assert json.loads(out) == []


def test_noqa(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "a.py").write_text(BAD.replace("print('x', x)", "print('x', x)  # noqa: JX101"))
    (project / "b.py").write_text(BAD.replace("print('x', x)", "print('x', x)  # noqa: JX204"))
    (project / "c.py").write_text(BAD.replace("print('x', x)", "print('x', x)  # noqa"))
    (project / "d.py").write_text("# flaxify: noqa\n" + BAD)
    code, out, _ = _run(["a.py", "b.py", "c.py", "d.py"], capsys)
    assert code == 1
    assert [line.split(":")[0] for line in out.splitlines()] == ["b.py"]


def test_pyproject_config(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pkg").mkdir()
    (project / "pkg" / "bad.py").write_text(BAD + "import haiku as hk\n")
    (project / "other.py").write_text(BAD)
    (project / "pyproject.toml").write_text(
        '[tool.flaxify.lint]\nextend-select = ["JX901"]\n'
        '[tool.flaxify.lint.per-file-ignores]\n"pkg/*.py" = ["JX101"]\n'
    )
    _, out, _ = _run(["."], capsys)
    codes = sorted(line.split(": ")[1].split()[0] + "@" + line.split(":")[0] for line in out.splitlines())
    assert codes == ["JX101@other.py", "JX901@pkg/bad.py"]
    (project / "pyproject.toml").write_text('[tool.flaxify.lint]\nignore = ["JX1"]\n')
    assert _run(["."], capsys)[0] == 0
    (project / "pyproject.toml").write_text('[tool.flaxify.lint]\nselect = ["JX101"]\nbogus = 1\n')
    code, _, err = _run(["."], capsys)
    assert code == 2 and "bogus" in err


def test_unparsable_file_is_reported_and_others_still_lint(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "broken.py").write_text("def f(:\n")
    (project / "bad.py").write_text(BAD)
    (project / "latin.py").write_bytes(b"x = '\xe9'\n")  # no coding cookie: not UTF-8, so not Python
    code, out, err = _run(["."], capsys)
    assert code == 1
    lines = out.splitlines()
    assert any(line.startswith("broken.py:1:") and " JX001 syntax error" in line for line in lines)
    assert any(line.startswith("latin.py:1:1: JX001") for line in lines)
    assert any(line.startswith("bad.py:5:5: JX101") for line in lines)
    assert "could not be parsed" in err


def test_fix_safe_and_unsafe(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = ("import jax\nimport numpy as np\nimport jax.numpy as jnp\n\n@jax.jit\ndef f(x):\n"
              "    print('x', x)\n    jax.debug.print(f'y={x}')\n    return np.sin(x)\n")
    path = project / "m.py"
    path.write_text(source)
    code, out, err = _run(["m.py", "--fix"], capsys)
    fixed = path.read_text()
    assert "jax.debug.print('x {x}', x=x)" in fixed and "jax.debug.print('y={x}', x=x)" in fixed
    assert "np.sin(x)" in fixed  # unsafe: left alone without --unsafe-fixes
    assert code == 1 and "JX206" in out and "Fixed 2 findings" in err
    code, _, _ = _run(["m.py", "--fix", "--unsafe-fixes"], capsys)
    assert code == 0 and "jnp.sin(x)" in path.read_text()
    compile(path.read_text(), "m.py", "exec")


def test_cache_reuses_and_invalidates(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.py").write_text(BAD)
    cache = project / "cache"
    first = main(["lint", "bad.py", "--cache-dir", str(cache)])
    out1 = capsys.readouterr().out
    assert first == 1 and list(cache.rglob("*.json"))
    assert main(["lint", "bad.py", "--cache-dir", str(cache)]) == 1
    assert capsys.readouterr().out == out1
    (project / "bad.py").write_text(CLEAN)
    assert main(["lint", "bad.py", "--cache-dir", str(cache)]) == 0


def test_jobs_give_the_same_findings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(4):
        (project / f"m{i}.py").write_text(BAD)
    _, serial, _ = _run(["."], capsys)
    _, parallel, _ = _run([".", "-j", "2"], capsys)
    assert serial == parallel and serial.count("JX101") == 4


def test_jobs_on_one_package_give_the_same_findings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = project / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("def log(v):\n    print('v', v)\n")
    for i in range(4):
        (package / f"step{i}.py").write_text(
            "import jax\nfrom pkg.helpers import log\n\n@jax.jit\ndef f(x):\n    log(x)\n    return float(x)\n")
    _, serial, _ = _run(["pkg"], capsys)
    _, parallel, _ = _run(["pkg", "-j", "3"], capsys)
    assert serial == parallel
    assert serial.count("JX101") == 1 and serial.count("JX204") == 4


def test_jobs_keep_a_project_wide_x64_flag_with_its_float64_files(project: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # a.py and x64.py do not import each other, yet x64.py silences JX211 in a.py.
    (project / "a.py").write_text("import jax\nimport jax.numpy as jnp\n\n@jax.jit\ndef f(x):\n"
                                  "    return x.astype(jnp.float64)\n")
    (project / "b.py").write_text(BAD)
    (project / "x64.py").write_text("import jax\n\njax.config.update('jax_enable_x64', True)\n")
    _, serial, _ = _run([".", "--extend-select", "JX211"], capsys)
    _, parallel, _ = _run([".", "--extend-select", "JX211", "-j", "2"], capsys)
    assert serial == parallel and "JX211" not in serial and "JX101" in serial
    (project / "x64.py").write_text("import jax\n")
    _, serial, _ = _run([".", "--extend-select", "JX211"], capsys)
    assert "a.py:6:12: JX211" in serial


def test_selection_semantics() -> None:
    from flaxify.lint.settings import LintSettings

    default = LintSettings()
    assert default.enabled("JX101", True) and not default.enabled("JX901", False)
    assert not LintSettings(select=("JX",)).enabled("JX901", False)
    assert LintSettings(select=("JX9",)).enabled("JX901", False)
    assert LintSettings(select=("ALL",)).enabled("JX901", False)
    assert not LintSettings(select=("JX1",), ignore=("JX101",)).enabled("JX101", True)
    assert LintSettings(select=("JX101",), ignore=("JX1",)).enabled("JX101", True)  # more specific wins
    assert not LintSettings(select=("JX1",), ignore=("JX1",)).enabled("JX102", True)  # tie goes to ignore


def test_pep_263_encodings_are_read_and_fixed_in_place(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\nimport jax\n\n@jax.jit\ndef f(x):\n    print('caf\xe9', x)\n"
                     b"    return x\n")
    code, out, _ = _run(["latin.py"], capsys)
    assert code == 1 and out.startswith("latin.py:6:5: JX101")
    assert _run(["latin.py", "--fix"], capsys)[0] == 0
    assert b"jax.debug.print('caf\xe9 {x}', x=x)" in path.read_bytes()
