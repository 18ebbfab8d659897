"""``flaxify migrate`` under faults: killed mid-run, unwritable files, hostile links, huge files, odd bytes.

The contract (DESIGN.md): every file ends up either as it was or fully migrated, never
half-written; a file that cannot be handled is reported and the rest still run. The
expected migrated bytes always come from :func:`flaxify.migrate.migrate_source` itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flaxify.cli import cli
from flaxify.migrate import migrate_source
from flaxify.migrate.project import index_sources
from flaxify.migrate.runner import TEMP_SUFFIX

FLAXIFY = str(Path(sys.executable).with_name("flaxify"))
TEMPLATE = """import haiku as hk


class Block{n}(hk.Module):
    def __call__(self, x):
        x = hk.Linear({n} + 1)(x)
        return hk.LayerNorm(axis=-1, create_scale=True, create_offset=True)(x)


def forward(x):
    return Block{n}()(x)


net = hk.transform(forward)
"""
PLAIN = b"import numpy as np\n\n\ndef f(x):\n    return np.asarray(x) * 2\n"


def invoke(*args: str | Path) -> Result:
    """``flaxify migrate ARGS`` in-process, stdout and stderr apart."""
    return CliRunner().invoke(cli, ["migrate", *map(str, args)], catch_exceptions=False)


def haiku_tree(root: Path, count: int) -> dict[Path, tuple[bytes, bytes]]:
    """``count`` distinct Haiku files: path → (original bytes, what a full migration makes of them)."""
    root.mkdir(parents=True, exist_ok=True)
    originals = {root / f"model_{n:03d}.py": TEMPLATE.format(n=n).encode() for n in range(count)}
    for path, source in originals.items():
        path.write_bytes(source)
    project = index_sources(originals.items())
    return {path: (src, migrate_source(src, str(path), project).source) for path, src in originals.items()}


def states(files: dict[Path, tuple[bytes, bytes]]) -> dict[str, int]:
    """How many files are original, fully migrated, or anything else ("torn")."""
    counts = {"original": 0, "migrated": 0, "torn": 0}
    for path, (original, migrated) in files.items():
        data = path.read_bytes()
        counts["original" if data == original else "migrated" if data == migrated else "torn"] += 1
    return counts


def start(root: Path, *args: str) -> subprocess.Popen[bytes]:
    """The real ``flaxify migrate`` in its own process group, as a shell would start it."""
    return subprocess.Popen(
        [FLAXIFY, "migrate", *args, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )


def wait_for_progress(process: subprocess.Popen[bytes], files: dict[Path, tuple[bytes, bytes]]) -> None:
    """Returns once at least one file is migrated (so the run is truly mid-way)."""
    deadline = time.monotonic() + 120
    while states(files)["migrated"] == 0:
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no file was migrated within two minutes"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("sig", "jobs"),
    [(signal.SIGKILL, "1"), (signal.SIGINT, "1"), (signal.SIGKILL, "2"), (signal.SIGINT, "2")],
    ids=["kill", "int", "kill-j2", "int-j2"],
)
def test_interrupted_run_leaves_each_file_original_or_migrated(tmp_path: Path, sig: int, jobs: str) -> None:
    files = haiku_tree(tmp_path / "tree", 24)
    process = start(tmp_path / "tree", "-j", jobs)
    wait_for_progress(process, files)
    os.killpg(process.pid, sig)  # the whole group, like Ctrl-C in a terminal
    _, stderr = process.communicate(timeout=60)  # an interrupted pool must not hang
    counts = states(files)
    assert counts["torn"] == 0, counts
    if sig == signal.SIGINT:
        assert process.returncode != 0
        assert b"Traceback" not in stderr, stderr.decode()
        assert not list((tmp_path / "tree").glob(f"*{TEMP_SUFFIX}")), "temporary files left behind"
    # A rerun finishes the job: every file migrated, and temporaries (SIGKILL) are never taken for sources.
    rerun = invoke(tmp_path / "tree")
    assert rerun.exit_code == 0, rerun.stderr
    assert states(files) == {"original": 0, "migrated": len(files), "torn": 0}


def test_read_only_file_is_reported_and_the_rest_are_migrated(tmp_path: Path) -> None:
    files = haiku_tree(tmp_path, 3)
    locked = tmp_path / "model_001.py"
    locked.chmod(0o444)
    result = invoke(tmp_path)
    assert result.exit_code == 1
    assert f"{locked}: error:" in result.stderr and "read-only" in result.stderr
    assert locked.read_bytes() == files[locked][0]
    assert all(path.read_bytes() == migrated for path, (_, migrated) in files.items() if path != locked)
    assert stat_mode(locked) == 0o444


def stat_mode(path: Path) -> int:
    """Permission bits of ``path``."""
    return path.stat().st_mode & 0o777


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads and writes through chmod 000")
def test_unreadable_file_and_folder_are_reported_and_the_rest_continue(tmp_path: Path) -> None:
    files = haiku_tree(tmp_path, 2)
    secret = tmp_path / "secret.py"
    secret.write_bytes(PLAIN)
    secret.chmod(0)
    closed = tmp_path / "closed"
    closed.mkdir()
    (closed / "inner.py").write_bytes(PLAIN)
    closed.chmod(0)
    try:
        result = invoke(tmp_path)
    finally:
        secret.chmod(0o644)
        closed.chmod(0o755)
    assert result.exit_code == 1
    assert "secret.py: error:" in result.stderr and "closed: error:" in result.stderr
    assert all(path.read_bytes() == migrated for path, (_, migrated) in files.items())


def test_output_folder_that_cannot_be_created_fails_that_file_only(tmp_path: Path) -> None:
    """A write error under ``-o`` (here: a file where a folder must go) is one file's failure."""
    src = tmp_path / "src"
    files = haiku_tree(src / "sub", 1)
    haiku_tree(src, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_bytes(b"a file, not a folder")
    result = invoke(src, "-o", out)
    assert result.exit_code == 1
    assert "sub/model_000.py: error:" in result.stderr
    assert (out / "model_000.py").exists()
    assert all(path.read_bytes() == original for path, (original, _) in files.items())


def test_symlinks_never_lead_a_walk_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside_files = haiku_tree(outside, 1)
    tree = tmp_path / "tree"
    inside = haiku_tree(tree, 1)
    (tree / "link_to_file.py").symlink_to(outside / "model_000.py")
    (tree / "link_to_dir").symlink_to(outside, target_is_directory=True)
    (tree / "loop").symlink_to(tree, target_is_directory=True)  # a cycle a naive walk never leaves
    (tree / "dangling.py").symlink_to(tmp_path / "missing.py")
    result = invoke(tree)
    assert result.exit_code == 0, result.stderr
    assert all(path.read_bytes() == original for path, (original, _) in outside_files.items())
    assert all(path.read_bytes() == migrated for path, (_, migrated) in inside.items())
    assert (tree / "link_to_file.py").is_symlink() and (tree / "dangling.py").is_symlink()


def test_a_link_inside_the_tree_is_migrated_once_through_its_target_and_stays_a_link(tmp_path: Path) -> None:
    files = haiku_tree(tmp_path, 1)
    (tmp_path / "alias.py").symlink_to(tmp_path / "model_000.py")
    result = invoke(tmp_path)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "alias.py").is_symlink()
    assert all(path.read_bytes() == migrated for path, (_, migrated) in files.items())


def five_megabytes(head: bytes) -> bytes:
    """``head`` followed by ordinary functions up to 5 MB."""
    unit = b'def f_%d(a, b=2):\n    """Caf\xc3\xa9 %d."""\n    return [a * b + i for i in range(%d)]\n\n\n'
    parts = [head]
    size, n = len(head), 0
    while size < 5 * 2**20:
        parts.append(unit % (n, n, n))
        size += len(parts[-1])
        n += 1
    return b"".join(parts)


def test_a_5_mb_file_without_haiku_is_left_byte_identical_quickly(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_bytes(five_megabytes(b"import jax.numpy as jnp\n\n\n"))
    before = big.read_bytes()
    result = invoke(tmp_path)
    assert result.exit_code == 0, result.stderr
    assert big.read_bytes() == before


def test_a_5_mb_file_is_linted(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_bytes(five_megabytes(b"import jax\n\n\n@jax.jit\ndef step(x):\n    print(x)\n    return x\n\n\n"))
    result = CliRunner().invoke(cli, ["lint", "--no-cache", str(big)], catch_exceptions=False)
    assert result.exit_code == 1, result.stderr
    assert "big.py:6:5: JX101" in result.stdout


def variants(source: bytes) -> dict[str, tuple[bytes, bytes]]:
    """Encodings of the same program: (input, what its migration must be given ``source``'s migration)."""
    base = migrate_source(source, "m.py").source
    assert base != source, "the probe must be something the engine rewrites"
    tabs_in, tabs_out = source.replace(b"    ", b"\t"), base.replace(b"    ", b"\t")
    return {
        "crlf": (source.replace(b"\n", b"\r\n"), base.replace(b"\n", b"\r\n")),
        "bom": (b"\xef\xbb\xbf" + source, b"\xef\xbb\xbf" + base),
        "bom-crlf": (b"\xef\xbb\xbf" + source.replace(b"\n", b"\r\n"), b"\xef\xbb\xbf" + base.replace(b"\n", b"\r\n")),
        "tabs": (tabs_in, tabs_out),
    }


NON_ASCII = """# Modèle de base — 模型 — λ-calcul
import haiku as hk


class Modèle(hk.Module):
    \"\"\"Docstring: naïve café ☕.\"\"\"

    def __call__(self, x):
        # commentaire: ü ß 日本語
        λ = hk.Linear(3)(x)  # trailing ∑ comment
        return λ * 2


def forward(x):
    return Modèle()(x)


net = hk.transform(forward)
""".encode()


@pytest.mark.parametrize("name", ["crlf", "bom", "bom-crlf", "tabs"])
def test_line_endings_bom_and_tabs_are_preserved(tmp_path: Path, name: str) -> None:
    """Migrating a CRLF/BOM/tab-indented file gives the same result as the plain one, in that encoding."""
    source, want = variants(NON_ASCII)[name]
    path = tmp_path / "m.py"
    path.write_bytes(source)
    assert invoke(path).exit_code == 0
    assert path.read_bytes() == want
    compile(path.read_bytes(), str(path), "exec")  # mixed tabs and spaces would be a TabError


def test_non_ascii_identifiers_comments_and_docstrings_survive(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_bytes(NON_ASCII)
    assert invoke(path).exit_code == 0
    text = path.read_text(encoding="utf-8")
    for kept in ("# Modèle de base — 模型 — λ-calcul", "class Modèle(", "naïve café ☕", "# commentaire: ü ß 日本語",
                 "# trailing ∑ comment", "return λ * 2"):
        assert kept in text
    assert "hk." not in text
