"""Render findings as text, JSON, SARIF 2.1.0 or GitHub Actions annotations.

Each function returns a string; ``flaxify.reporting`` prints it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from flaxify import __version__
from flaxify.lint.model import Finding, Fix
from flaxify.lint.rules import RULES

FORMATS = ("text", "json", "sarif", "github")
INFORMATION_URI = "https://github.com/flaxify/flaxify/blob/main/docs/lint.md"
PARSE_ERROR_NAME = "syntax-error"


def render(findings: Sequence[Finding], fmt: str) -> str:
    return {"text": text, "json": to_json, "sarif": sarif, "github": github}[fmt](findings)


def text(findings: Sequence[Finding]) -> str:
    """``path:line:col: CODE message``, one per line (1-based)."""
    return "\n".join(f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}" for f in findings)


def _fix_json(fix: Fix | None) -> dict | None:  # type: ignore[type-arg]
    if fix is None:
        return None
    return {
        "applicability": fix.applicability.value,
        "message": fix.message,
        "edits": [
            {"content": e.content, "location": {"row": e.line, "column": e.column},
             "end_location": {"row": e.end_line, "column": e.end_column}}
            for e in fix.edits
        ],
    }


def to_json(findings: Sequence[Finding]) -> str:
    names = _names()
    return json.dumps(
        [
            {"path": f.path, "line": f.line, "column": f.column, "end_line": f.end_line, "end_column": f.end_column,
             "code": f.code, "name": names.get(f.code, ""), "message": f.message, "fix": _fix_json(f.fix)}
            for f in findings
        ],
        indent=2,
    )


def _names() -> dict[str, str]:
    table = {rule.CODE: rule.NAME for rule in RULES}
    table["JX001"] = PARSE_ERROR_NAME
    return table


def _rule_descriptors() -> list[dict]:  # type: ignore[type-arg]
    descriptors = [{"id": "JX001", "name": PARSE_ERROR_NAME,
                    "shortDescription": {"text": "The file could not be parsed."},
                    "helpUri": f"{INFORMATION_URI}#jx001"}]
    for rule in RULES:
        summary = rule.MESSAGE.replace("{", "").replace("}", "")
        descriptors.append({
            "id": rule.CODE,
            "name": rule.NAME,
            "shortDescription": {"text": summary},
            "fullDescription": {"text": (rule.__doc__ or "").strip()},
            "helpUri": f"{INFORMATION_URI}#{rule.CODE.lower()}",
            "defaultConfiguration": {"enabled": rule.DEFAULT},
        })
    return descriptors


def sarif(findings: Sequence[Finding]) -> str:
    """SARIF 2.1.0 with ``tool.driver.rules`` and ``ruleIndex``, as GitHub code scanning reads it."""
    rules = _rule_descriptors()
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = []
    for f in findings:
        result = {
            "ruleId": f.code,
            "ruleIndex": index.get(f.code, 0),
            "level": "error",
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.path},
                "region": {"startLine": f.line, "startColumn": f.column,
                           "endLine": f.end_line, "endColumn": f.end_column},
            }}],
        }
        if f.fix is not None:
            result["fixes"] = [{
                "description": {"text": f.fix.message},
                "artifactChanges": [{
                    "artifactLocation": {"uri": f.path},
                    "replacements": [{
                        "deletedRegion": {"startLine": e.line, "startColumn": e.column,
                                          "endLine": e.end_line, "endColumn": e.end_column},
                        "insertedContent": {"text": e.content},
                    } for e in f.fix.edits],
                }],
            }]
        results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "flaxify-lint", "version": __version__,
                                "informationUri": INFORMATION_URI, "rules": rules}},
            "results": results,
        }],
    }
    return json.dumps(log, indent=2)


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github(findings: Sequence[Finding]) -> str:
    """``::error file=...,line=...,col=...,endLine=...,endColumn=...,title=...::message`` workflow commands."""
    lines = []
    for f in findings:
        props = (f"file={_escape_property(f.path)},line={f.line},col={f.column},endLine={f.end_line},"
                 f"endColumn={f.end_column},title={_escape_property('flaxify (' + f.code + ')')}")
        lines.append(f"::error {props}::{_escape_data(f'{f.code} {f.message}')}")
    return "\n".join(lines)
