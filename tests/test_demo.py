"""The README's demo, end to end, shortened: migrate, check, convert, train both, lint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_migrates_checks_converts_and_trains_identically(tmp_path: Path) -> None:
    env = {**os.environ, "FLAXIFY_DEMO_DIR": str(tmp_path / "demo"), "FLAXIFY_DEMO_STEPS": "20"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "fixtures" / "run_demo.py")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "demo passed" in done.stdout
    assert "EQUIVALENT (outputs bit-exact: yes" in done.stdout + done.stderr
    migrated = (tmp_path / "demo" / "flax" / "model.py").read_text()
    assert "import haiku" not in migrated and "TODO(flaxify)" not in migrated
    # The original project in fixtures/ is never touched.
    assert "import haiku as hk" in (ROOT / "fixtures" / "example_project" / "model.py").read_text()
