"""The pre-commit hooks in .pre-commit-hooks.yaml, run by the real ``pre-commit`` tool on a temporary git repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PRE_COMMIT = shutil.which("pre-commit", path=str(BIN)) or shutil.which("pre-commit")
BAD = "import jax\n\n@jax.jit\ndef f(x):\n    print(x)\n    return x\n"
HAIKU = "import haiku as hk\n\ndef forward(x):\n    return hk.Linear(2)(x)\n\nnet = hk.transform(forward)\n"

pytestmark = pytest.mark.skipif(PRE_COMMIT is None, reason="pre-commit is not installed (requirements-dev.txt)")


def _hooks() -> list[dict[str, object]]:
    import yaml  # pre-commit depends on PyYAML

    return yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))


def _git_repo(path: Path, files: dict[str, str]) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")
    subprocess.run(["git", "add", "."], cwd=path, check=True)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "pc-home"), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return env


def _local_config(repo: Path) -> None:
    """Our hook definitions as a `repo: local` config with `language: system` (no install, works offline)."""
    import yaml

    hooks = []
    for hook in _hooks():
        local = {k: v for k, v in hook.items() if k not in ("language", "minimum_pre_commit_version")}
        local["language"] = "system"
        local["entry"] = str(BIN / str(hook["entry"]))  # `flaxify lint ...` from this interpreter's bin
        hooks.append(local)
    config = {"repos": [{"repo": "local", "hooks": hooks}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def _run(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PRE_COMMIT), *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=600)


def test_hooks_file_declares_the_hooks() -> None:
    hooks = {h["id"]: h for h in _hooks()}
    assert {"flaxify-lint", "flaxify-lint-fix", "flaxify-no-haiku"} <= set(hooks)
    for hook in hooks.values():
        assert hook["language"] == "python" and str(hook["entry"]).startswith("flaxify lint")
        assert hook["require_serial"] is True
    assert "--select JX901" in str(hooks["flaxify-no-haiku"]["entry"])


def test_hooks_run_under_pre_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _git_repo(repo, {"bad.py": BAD, "model.py": HAIKU})
    _local_config(repo)
    env = _env(tmp_path)
    lint = _run(repo, env, "run", "flaxify-lint", "--all-files")
    assert lint.returncode == 1, lint.stdout + lint.stderr
    assert "bad.py:5:5: JX101" in lint.stdout
    no_haiku = _run(repo, env, "run", "flaxify-no-haiku", "--all-files")
    assert no_haiku.returncode == 1 and "model.py:1:1: JX901" in no_haiku.stdout
    fixed = _run(repo, env, "run", "flaxify-lint-fix", "--all-files")
    assert fixed.returncode == 1 and "files were modified by this hook" in fixed.stdout
    assert "jax.debug.print('{x}', x=x)" in (repo / "bad.py").read_text()
    (repo / "model.py").write_text("import flax.linen as nn\n", encoding="utf-8")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    assert _run(repo, env, "run", "flaxify-no-haiku", "--all-files").returncode == 0
    assert _run(repo, env, "run", "flaxify-lint", "--all-files").returncode == 0


def test_hook_installs_from_this_repository(tmp_path: Path) -> None:
    """`language: python` as users get it: pre-commit builds a virtualenv and pip-installs this repo."""
    repo = tmp_path / "repo"
    _git_repo(repo, {"bad.py": BAD})
    result = _run(repo, _env(tmp_path), "try-repo", str(ROOT), "flaxify-lint", "--files", "bad.py")
    if "An error has occurred" in result.stdout + result.stderr and "JX101" not in result.stdout:
        log = result.stdout + result.stderr
        if any(word in log for word in ("Could not find a version", "NewConnectionError", "No matching distribution")):
            pytest.skip("package index unreachable: cannot build the hook's environment")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bad.py:5:5: JX101" in result.stdout
