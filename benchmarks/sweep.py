"""The full robustness sweep: `flaxify migrate --diff` and `flaxify lint` over every `.py` in site-packages.

Rerun: `.venv/bin/python benchmarks/sweep.py [--site DIR] [--jobs N]`
(writes benchmarks/results/sweep_site_packages.{json,md}; takes tens of minutes).

What it asserts, file by file (the result lists every exception by path):
1. migrate: each file is processed or reported as a clean error (never "internal error",
   never a traceback); a file without `haiku` in its bytes comes out byte-identical.
2. the diff applies (`git apply`) to a copy of the changed files, and `migrate --check`
   on those copies changes nothing: every migrated file is a fixed point.
3. lint, one process per top-level package (each package one project): exit 0 with
   `--exit-zero`, no traceback, no internal error; files that do not parse are JX001.
The CI slice of the same checks is tests/test_robustness_sweep.py (~150 files).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
FLAXIFY = str(Path(sys.executable).with_name("flaxify"))
VERSIONS = ("flaxify", "libcst", "jax", "flax", "dm-haiku", "optax")


def environment() -> dict[str, Any]:
    """Date, machine, load and versions, recorded with every result."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in VERSIONS},
    }


def site_packages() -> Path:
    """The site-packages folder this interpreter's jax lives in."""
    import jax

    return Path(jax.__file__).resolve().parent.parent


def every_py(site: Path) -> list[str]:
    """Every `*.py` below ``site`` (no folder skipped, links not followed), relative, sorted."""
    return sorted(
        (Path(folder) / name).relative_to(site).as_posix()
        for folder, _, names in os.walk(site)
        for name in names
        if name.endswith(".py") and (Path(folder) / name).is_file()
    )


def run(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Runs a child; returns it, its wall seconds and its peak RSS in MB (from wait4)."""
    start = time.perf_counter()
    child = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - start
    # ru_maxrss of all waited-for children so far: monotone, so it is an upper bound for this one.
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return subprocess.CompletedProcess(args, child.returncode, stdout, stderr), wall, peak


def migrate_pass(site: Path, files: list[str], jobs: int, work: Path) -> dict[str, Any]:
    """`migrate --diff --report` over every file; returns the checks and the diff."""
    report = work / "migrate.json"
    done, wall, _ = run([FLAXIFY, "migrate", "--diff", "-j", str(jobs), "--report", str(report), *files], site)
    (work / "migrate.diff").write_text(done.stdout, encoding="utf-8")
    entries = json.loads(report.read_text(encoding="utf-8"))["files"]
    by_path = {entry["path"]: entry for entry in entries}
    statuses = Counter(entry["status"] for entry in entries)
    internal = {p: e["error"] for p, e in by_path.items() if e["error"] and e["error"].startswith("internal error")}
    clean_errors = {p: _where(e) for p, e in by_path.items() if e["status"] == "failed" and p not in internal}
    plain_changed = [p for p in non_haiku(site, files) if by_path[p]["status"] != "unchanged"]
    return {
        "seconds": round(wall, 1),
        "exit_code": done.returncode,
        "traceback": "Traceback" in done.stderr,
        "files": len(files),
        "reported": len(entries),
        "missing_from_report": sorted(set(files) - set(by_path)),
        "statuses": dict(statuses),
        "haiku_files": sum(1 for p in files if b"haiku" in (site / p).read_bytes()),
        "internal_errors": internal,
        "clean_errors": clean_errors,
        "non_haiku_files_changed": plain_changed,
        "changed": sorted(p for p, e in by_path.items() if e["status"] == "changed"),
        "todos": sum(1 for _ in json.loads(report.read_text(encoding="utf-8"))["todos"]),
    }


def non_haiku(site: Path, files: list[str]) -> list[str]:
    """Files that neither mention `haiku` nor import a model a Haiku file of the sweep transforms.

    (``train.py`` doing ``from model import net`` has its ``net.apply`` call sites migrated.)
    """
    from flaxify.migrate.project import index_sources

    sources = {rel: (site / rel).read_bytes() for rel in files}
    index = index_sources((Path(rel), data) for rel, data in sources.items() if len(data) < 2**20)
    return [rel for rel, data in sources.items() if b"haiku" not in data and not index.imported_by(data)]


def _where(entry: dict[str, Any]) -> str:
    """``line:col: message`` of a failed file."""
    position = f"{entry['line']}:{entry['column']}: " if "line" in entry else ""
    return f"{position}{entry['error']}"


def fixed_point_pass(site: Path, changed: list[str], work: Path) -> dict[str, Any]:
    """Applies the diff to copies of the changed files, then `migrate --check` must change nothing."""
    copy = work / "migrated"
    for rel in changed:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(site / rel, copy / rel)
    applied = subprocess.run(
        ["git", "apply", "-p1", "--whitespace=nowarn", "--unidiff-zero", str(work / "migrate.diff")],
        cwd=copy, capture_output=True, text=True,
    )
    report = work / "second.json"
    done, wall, _ = run([FLAXIFY, "migrate", "--check", "--report", str(report), *changed], copy)
    entries = json.loads(report.read_text(encoding="utf-8"))["files"] if report.exists() else []
    return {
        "seconds": round(wall, 1),
        "diff_applies": applied.returncode == 0,
        "git_apply_stderr": applied.stderr[-2000:],
        "exit_code": done.returncode,
        "traceback": "Traceback" in done.stderr,
        "not_fixed_points": sorted(e["path"] for e in entries if e["status"] != "unchanged"),
    }


def lint_batches(files: list[str]) -> dict[str, list[str]]:
    """Files grouped by top-level package (one lint project each); loose modules together."""
    groups: dict[str, list[str]] = defaultdict(list)
    for rel in files:
        top = rel.split("/", 1)[0] if "/" in rel else "(top-level modules)"
        groups[top].append(rel)
    return dict(groups)


def lint_pass(site: Path, files: list[str]) -> dict[str, Any]:
    """`flaxify lint --no-cache --exit-zero --format json` per package; collects every anomaly."""
    batches, bad, parse_errors = [], {}, {}
    total = 0.0
    for name, group in sorted(lint_batches(files).items()):
        done, wall, _ = run([FLAXIFY, "lint", "--no-cache", "--exit-zero", "--format", "json", *group], site)
        total += wall
        internal = [line for line in done.stderr.splitlines() if "a flaxify bug" in line]
        try:
            findings = json.loads(done.stdout or "[]")
        except ValueError:
            findings = None
        if done.returncode != 0 or "Traceback" in done.stderr or internal or findings is None:
            bad[name] = {"exit_code": done.returncode, "internal": internal[:20], "stderr_tail": done.stderr[-1500:]}
        for finding in findings or []:
            if finding["code"] == "JX001":
                parse_errors[finding["path"]] = f"{finding['line']}:{finding['column']}: {finding['message']}"
        batches.append({"package": name, "files": len(group), "seconds": round(wall, 2),
                        "findings": len(findings or [])})
    return {"seconds": round(total, 1), "batches": batches, "failed_batches": bad, "parse_errors": parse_errors,
            "findings": sum(b["findings"] for b in batches)}


def verdict(result: dict[str, Any]) -> list[str]:
    """Every way the sweep is not clean; empty when it is."""
    migrate, second, lint = result["migrate"], result["fixed_point"], result["lint"]
    problems = []
    if migrate["traceback"] or migrate["missing_from_report"]:
        problems.append("migrate: traceback or files missing from the report")
    if migrate["internal_errors"]:
        problems.append(f"migrate: {len(migrate['internal_errors'])} internal errors")
    if migrate["non_haiku_files_changed"]:
        problems.append(f"migrate: {len(migrate['non_haiku_files_changed'])} files without haiku changed")
    if not second["diff_applies"]:
        problems.append("migrate --diff output does not apply with git apply")
    if second["not_fixed_points"] or second["traceback"]:
        problems.append(f"migrate: {len(second['not_fixed_points'])} migrated files change on a second run")
    if lint["failed_batches"]:
        problems.append(f"lint: {len(lint['failed_batches'])} packages crashed or reported internal errors")
    return problems


def markdown(result: dict[str, Any]) -> str:
    """The human summary committed next to the JSON."""
    env, migrate, second, lint = result["environment"], result["migrate"], result["fixed_point"], result["lint"]
    problems = result["problems"]
    lines = [
        "# Robustness sweep over site-packages",
        "",
        f"{env['date']} on {env['machine']}; load average at start {env['load_average_at_start']}; "
        f"Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        f"Rerun: `.venv/bin/python benchmarks/sweep.py` (this run: -j {result['jobs']}).",
        "",
        f"**Verdict: {'clean' if not problems else 'NOT clean'}.** " + ("; ".join(problems) if problems else ""),
        "",
        "| check | result |",
        "| --- | --- |",
        f"| files swept | {migrate['files']} `.py` files ({migrate['haiku_files']} mention `haiku`) |",
        f"| migrate --diff | {migrate['seconds']} s; statuses {migrate['statuses']}; exit {migrate['exit_code']}; "
        f"{migrate['todos']} TODOs |",
        f"| internal errors (migrate) | {len(migrate['internal_errors'])} |",
        f"| clean errors (parse/decode, file untouched) | {len(migrate['clean_errors'])} |",
        f"| files without Haiku use not byte-identical | {len(migrate['non_haiku_files_changed'])} |",
        f"| diff applies with `git apply` | {second['diff_applies']} |",
        f"| migrated files that change on a 2nd run | {len(second['not_fixed_points'])} of {len(migrate['changed'])} |",
        f"| lint (one process per package) | {lint['seconds']} s; {len(lint['batches'])} packages; "
        f"{lint['findings']} findings |",
        f"| lint crashes / internal errors | {len(lint['failed_batches'])} packages |",
        f"| lint parse errors (JX001) | {len(lint['parse_errors'])} |",
        "",
    ]
    for title, items in (("migrate internal errors", migrate["internal_errors"]),
                         ("migrate clean errors", migrate["clean_errors"]),
                         ("files without haiku that changed", dict.fromkeys(migrate["non_haiku_files_changed"], "")),
                         ("not fixed points", dict.fromkeys(second["not_fixed_points"], "")),
                         ("lint failures", {k: str(v)[:300] for k, v in lint["failed_batches"].items()}),
                         ("lint parse errors", lint["parse_errors"])):
        if items:
            lines += [f"## {title} ({len(items)})", ""]
            lines += [f"- `{path}` {text}".rstrip() for path, text in sorted(items.items())[:60]]
            lines += ["- ..." if len(items) > 60 else "", ""]
    lines += result.get("findings", [])
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=None, help="folder to sweep (default: site-packages)")
    parser.add_argument("--jobs", type=int, default=2, help="migrate worker processes")
    parser.add_argument("--name", default="sweep_site_packages", help="results file stem")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the stored .json")
    options = parser.parse_args()
    findings = RESULTS / "sweep_findings.md"
    if options.render_only:
        result = json.loads((RESULTS / f"{options.name}.json").read_text(encoding="utf-8"))
        result["findings"] = findings.read_text(encoding="utf-8").splitlines() if findings.exists() else []
        (RESULTS / f"{options.name}.md").write_text(markdown(result), encoding="utf-8")
        return 0
    site = (options.site or site_packages()).resolve()
    files = every_py(site)
    result: dict[str, Any] = {"environment": environment(), "site": str(site), "jobs": options.jobs}
    with tempfile.TemporaryDirectory(prefix="flaxify-sweep-") as folder:
        work = Path(folder)
        result["migrate"] = migrate_pass(site, files, options.jobs, work)
        result["fixed_point"] = fixed_point_pass(site, result["migrate"]["changed"], work)
    result["lint"] = lint_pass(site, files)
    result["environment"]["load_average_at_end"] = os.getloadavg()
    result["problems"] = verdict(result)
    result["findings"] = findings.read_text(encoding="utf-8").splitlines() if findings.exists() else []
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{options.name}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (RESULTS / f"{options.name}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0 if not result["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
