"""Which rules run on which files: ``[tool.flaxify.lint]`` plus the command line.

Ruff's semantics: codes or prefixes (``JX1``, ``JX101``, ``ALL``); when both
``select`` and ``ignore`` match a code, the more specific entry wins and a tie
goes to ``ignore``. ``per-file-ignores`` keys are globs relative to the
folder of ``pyproject.toml`` (or bare file names).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flaxify.config import ConfigError


class SettingsError(ValueError):
    """A bad code or option; the message says which and where."""


@dataclass(frozen=True)
class LintSettings:
    """Immutable, resolved settings of one lint run."""

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    root: Path = field(default_factory=Path.cwd)
    unsafe_fixes: bool = False

    def enabled(self, code: str, default_on: bool) -> bool:
        """Whether ``code`` runs at all (before per-file ignores).

        Rules that are off by default (JX404, JX901) need a selector that names them more
        specifically than the bare ``JX`` prefix: ``JX9``, ``JX901`` or ``ALL``.
        """
        selectors = (*(self.select or (("JX",) if default_on else ())), *self.extend_select)
        if not default_on:
            selectors = tuple(s for s in selectors if s == "ALL" or len(s) > 2)
        chosen = _best(code, selectors)
        return chosen > 0 and chosen > _best(code, self.ignore)

    def ignored_in(self, path: Path) -> tuple[str, ...]:
        """Codes (and prefixes) per-file-ignores switches off for ``path``."""
        try:
            relative = path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            relative = path.as_posix()
        found: list[str] = []
        for pattern, codes in self.per_file_ignores:
            if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(path.name, pattern):
                found.extend(codes)
        return tuple(found)


def _best(code: str, selectors: Iterable[str]) -> int:
    """Length of the most specific selector matching ``code`` (0 if none; ALL counts as 1)."""
    best = 0
    for selector in selectors:
        if selector == "ALL":
            best = max(best, 1)
        elif code.startswith(selector):
            best = max(best, len(selector) + 1)
    return best


def parse_codes(raw: Any, where: str, known: Iterable[str]) -> tuple[str, ...]:
    """Validates a list (or comma-separated string) of codes/prefixes against the rule table."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        items = [part.strip() for part in raw.split(",") if part.strip()]
    elif isinstance(raw, (list, tuple)) and all(isinstance(x, str) for x in raw):
        items = [x.strip() for x in raw]
    else:
        raise SettingsError(f"{where}: expected a list of rule codes, got {raw!r}")
    codes = list(known)
    for item in items:
        if item != "ALL" and not any(code.startswith(item.upper()) for code in codes):
            raise SettingsError(f"{where}: unknown rule code or prefix {item!r}")
    return tuple(item.upper() if item != "ALL" else item for item in items)


def build_settings(table: Mapping[str, Any], pyproject: Path | None, known: Iterable[str], *,
                   select: str | None = None, ignore: str | None = None, extend_select: str | None = None,
                   unsafe_fixes: bool = False) -> LintSettings:
    """Merges ``[tool.flaxify.lint]`` with command-line options (the command line wins for select)."""
    known = tuple(known)
    where = f"{pyproject}: [tool.flaxify.lint]" if pyproject else "[tool.flaxify.lint]"
    allowed = {"select", "ignore", "extend-select", "per-file-ignores", "unsafe-fixes"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SettingsError(f"{where}: unknown option(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}")
    pfi_raw = table.get("per-file-ignores", {})
    if not isinstance(pfi_raw, Mapping):
        raise SettingsError(f"{where}: per-file-ignores must be a table of glob = [codes]")
    per_file = tuple(
        (str(glob), parse_codes(codes, f"{where} per-file-ignores {glob!r}", known)) for glob, codes in pfi_raw.items()
    )
    chosen = parse_codes(select, "--select", known) if select else parse_codes(table.get("select"), where, known)
    return LintSettings(
        select=chosen,
        ignore=parse_codes(table.get("ignore"), where, known) + parse_codes(ignore, "--ignore", known),
        extend_select=parse_codes(table.get("extend-select"), where, known)
        + parse_codes(extend_select, "--extend-select", known),
        per_file_ignores=per_file,
        root=pyproject.parent if pyproject else Path.cwd(),
        unsafe_fixes=unsafe_fixes or bool(table.get("unsafe-fixes", False)),
    )


__all__ = ["ConfigError", "LintSettings", "SettingsError", "build_settings", "parse_codes"]
