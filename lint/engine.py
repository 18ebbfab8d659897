"""The lint engine: parse, index, analyse, run the rules, filter, return findings.

Nothing here prints; :mod:`flaxify.commands.lint` hands the result to
``flaxify.reporting``.
"""

from __future__ import annotations

import ast
import gc
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flaxify.lint.analysis import Analysis, Context
from flaxify.lint.model import Finding
from flaxify.lint.project import ModuleInfo, Project, index_module, release
from flaxify.lint.rule import ModuleContext, Rule, TracedContext
from flaxify.lint.rules import RULES
from flaxify.lint.settings import LintSettings

PARSE_ERROR = "JX001"
DEEP_RECURSION = 10_000
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
_FILE_NOQA = re.compile(r"^#\s*flaxify:\s*noqa\s*$", re.IGNORECASE | re.MULTILINE)
_SKIP_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


@dataclass
class LintResult:
    """Findings of one run, sorted; ``failed`` lists files that could not be parsed.

    ``internal`` holds "path: error" lines for rule work that crashed on a file (a bug in
    flaxify, reported on stderr; the other rules and files still ran).
    """

    findings: list[Finding] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    files: int = 0
    internal: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceFile:
    path: Path
    display: str
    source: str | None  # None when the file could not be read


def active_rules(settings: LintSettings) -> list[Rule]:
    return [rule() for rule in RULES if settings.enabled(rule.CODE, rule.DEFAULT)]


def parse(files: Iterable[SourceFile]) -> tuple[list[ModuleInfo], list[Finding]]:
    """Parses and indexes each file; a file that does not parse becomes a JX001 finding."""
    modules: list[ModuleInfo] = []
    errors: list[Finding] = []
    for item in files:
        if item.source is None:
            message = "cannot decode the file (not UTF-8 and no valid PEP 263 coding cookie)"
            errors.append(Finding(item.display, 1, 1, 1, 1, PARSE_ERROR, message))
            continue
        try:
            tree = ast.parse(item.source, filename=item.display)
            modules.append(index_module(item.path, item.display, item.source, tree))
        except (SyntaxError, ValueError) as err:
            line = getattr(err, "lineno", None) or 1
            column = getattr(err, "offset", None) or 1
            message = f"syntax error: {getattr(err, 'msg', str(err))}"
            errors.append(Finding(item.display, line, column, line, column, PARSE_ERROR, message))
        except (RecursionError, MemoryError):
            errors.append(Finding(item.display, 1, 1, 1, 1, PARSE_ERROR, "too deeply nested to analyse"))
    return modules, errors


def lint_sources(files: list[SourceFile], settings: LintSettings) -> LintResult:
    """Lints ``files`` as one project (the call graph spans all of them)."""
    # Millions of AST nodes stay alive for the whole run and form no garbage cycles worth
    # collecting; the cyclic GC would rescan them again and again (3x slower on the jax package).
    enabled = gc.isenabled()
    limit = sys.getrecursionlimit()
    gc.disable()
    sys.setrecursionlimit(max(limit, DEEP_RECURSION))  # long `a + b + c ...` chains nest deeply
    try:
        return _lint(files, settings)
    finally:
        sys.setrecursionlimit(limit)
        if enabled:
            gc.enable()


def _lint(files: list[SourceFile], settings: LintSettings) -> LintResult:
    modules, errors = parse(files)
    try:
        return lint_modules(modules, errors, settings, len(files))
    finally:
        release(modules)


def lint_modules(modules: list[ModuleInfo], errors: list[Finding], settings: LintSettings, count: int) -> LintResult:
    """Analyses parsed modules as one project and runs the rules."""
    rules = active_rules(settings)
    analysis = Analysis(Project(modules))
    analysis.run()
    raw: list[Finding] = []
    internal: list[str] = []
    for module in modules:
        module_findings(module, analysis, rules, raw, internal)
    traced_findings(analysis, rules, raw, internal)
    return finish(modules, raw, internal, errors, settings, count)


def module_findings(module: ModuleInfo, analysis: Analysis, rules: list[Rule], raw: list[Finding],
                    internal: list[str]) -> None:
    """The module-scope rules on one file (its share of the raw findings; ``-j`` runs these anywhere)."""
    _guarded(internal, module.display, run_module_rules, module, analysis, rules, raw)


def traced_findings(analysis: Analysis, rules: list[Rule], raw: list[Finding], internal: list[str]) -> None:
    """The traced-scope rules on every traced function, in the order the analysis reached them."""
    traced_rules = [r for r in rules if r.SCOPE == "traced"]
    for context in analysis.contexts.values():
        _guarded(internal, context.fn.module.display, run_traced_rules, context, analysis, traced_rules, raw)


def finish(modules: list[ModuleInfo], raw: list[Finding], internal: list[str], errors: list[Finding],
           settings: LintSettings, count: int) -> LintResult:
    """Dedupes raw findings (first one wins), applies ignores and ``noqa``, adds parse errors, sorts."""
    by_path = {m.display: m for m in modules}
    findings = [f for f in _dedupe(raw) if _kept(f, by_path.get(f.path), settings)]
    findings.extend(errors)
    findings.sort(key=Finding.sort_key)
    return LintResult(findings, sorted({e.path for e in errors}), count, internal)


def _guarded(sink: list[str], path: str, run: Callable[..., None], *args: object) -> None:
    """Runs one unit of rule work; a crash is recorded instead of aborting the whole run."""
    try:
        run(*args)
    except (RecursionError, MemoryError) as err:
        sink.append(f"{path}: skipped, {type(err).__name__}")
    except Exception as err:  # noqa: BLE001 - a rule bug must not lose the other files' findings
        sink.append(f"{path}: internal error: {type(err).__name__}: {err}")


def run_module_rules(module: ModuleInfo, analysis: Analysis, rules: list[Rule], sink: list[Finding]) -> None:
    ctx = ModuleContext(module, analysis, sink)
    for rule in rules:
        if rule.SCOPE == "module":
            ctx.rule = rule
            rule.check_module(ctx)


def run_traced_rules(context: Context, analysis: Analysis, rules: list[Rule], sink: list[Finding]) -> None:
    """Walks one traced function body once, dispatching each node to the rules that visit it."""
    handlers: dict[type, list[tuple[Rule, object]]] = {}
    for rule in rules:
        if context.kind < rule.MIN_KIND:
            continue
        for name in _visitor_names(type(rule)):
            node_type = getattr(ast, name[6:])
            handlers.setdefault(node_type, []).append((rule, getattr(rule, name)))
    checkers = [r for r in rules if type(r).check is not Rule.check and context.kind >= r.MIN_KIND]
    if not handlers and not checkers:
        return
    fn = context.fn
    ctx = TracedContext(fn.module, analysis, sink, context)
    for rule in checkers:
        ctx.rule = rule
        rule.check(ctx)
    body = [fn.node.body] if isinstance(fn.node, ast.Lambda) else fn.node.body
    stack: list[ast.AST] = [node for node in reversed(body) if not isinstance(node, _SKIP_SCOPES)]
    while stack:
        node = stack.pop()
        for rule, visit in handlers.get(type(node), ()):
            ctx.rule = rule
            visit(node, ctx)  # type: ignore[operator]
        if isinstance(node, ast.Try) and _handles_tracer_errors(node):
            # `try: if rate == 0: ... except ConcretizationTypeError:` handles the traced case on purpose.
            stack.extend(reversed([*node.handlers, *node.orelse, *node.finalbody]))
            continue
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _SKIP_SCOPES):
                stack.append(child)


def _handles_tracer_errors(node: ast.Try) -> bool:
    for handler in node.handlers:
        caught = handler.type
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught] if caught is not None else []
        for name in names:
            text = ast.unparse(name)
            if "Concretization" in text or "Tracer" in text:
                return True
    return False


_VISITORS: dict[type, list[str]] = {}


def _visitor_names(rule_type: type) -> list[str]:
    names = _VISITORS.get(rule_type)
    if names is None:
        names = _VISITORS[rule_type] = [n for n in dir(rule_type) if n.startswith("visit_")]
    return names


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, int, int, str]] = set()
    unique: list[Finding] = []
    for finding in findings:
        key = finding.sort_key()
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return unique


def _kept(finding: Finding, module: ModuleInfo | None, settings: LintSettings) -> bool:
    if module is None:
        return True
    ignored = settings.ignored_in(module.path)
    if any(finding.code.startswith(prefix) for prefix in ignored):
        return False
    return not suppressed(module, finding)


def suppressed(module: ModuleInfo, finding: Finding) -> bool:
    """``# noqa`` / ``# noqa: CODE`` on the finding's first or last line, or ``# flaxify: noqa`` in the file."""
    source = module.source
    if "noqa" not in source:
        return False
    if _FILE_NOQA.search(source):
        return True
    lines = module.lines
    for number in {finding.line, finding.end_line}:
        if not 0 < number <= len(lines) or "noqa" not in lines[number - 1]:
            continue
        match = _NOQA.search(lines[number - 1])
        if match is None:
            continue
        codes = match.group("codes")
        if codes is None or finding.code in re.split(r"[\s,]+", codes.upper()):
            return True
    return False
