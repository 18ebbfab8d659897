"""Render docs/lint.md from the rule table, so the docs cannot drift from the code.

``python -m flaxify.lint.docs > docs/lint.md``; a test checks the committed file is current.
"""

from __future__ import annotations

import inspect

from flaxify.lint.rule import Invalid, Rule
from flaxify.lint.rules import RULES

INTRO = """\
# flaxify lint

A static linter that knows what JAX traces. It flags impure functions, hidden side effects and
tracer misuse that break `jax.jit` and the other transformations, and Flax/Haiku module misuse —
only in code that JAX traces, and in every project function that traced code reaches, across
modules. It parses your code with Python's `ast`; it never imports or runs it.

```console
$ flaxify lint src/
train.py:30:8: JX201 Python `if` on a traced value raises TracerBoolConversionError; use `jnp.where`, ...
trainer/metrics.py:12:5: JX101 `print` of a traced value runs once at trace time ... (reached from train_step (train.py:27) via log_metrics)
```

## What is traced

* functions decorated with or passed to `jax.jit`, `pmap`, `vmap`, `grad`, `value_and_grad`,
  `jacfwd`/`jacrev`/`hessian`, `checkpoint`/`remat`, `custom_jvp`/`custom_vjp` (and their
  `defjvp`/`defvjp` rules), `eval_shape`, `shard_map`; Equinox `filter_*` and NNX `nnx.*` twins;
* bodies passed to `lax.scan`, `fori_loop`, `while_loop`, `cond`, `switch`, `map`;
* Flax Linen `__call__`, `setup` and `@nn.compact` methods, NNX `__call__`, `hk.Module` methods and
  functions passed to `hk.transform*`;
* every project function those call (`self.method`, helpers, imports between the project's modules,
  at any depth). A finding in a helper names the chain: `reached from train_step (train.py:27) via log_metrics`.

`static_argnums`/`static_argnames` (and `partial(f, ...)`-bound arguments) are static; so are
`.shape`, `.ndim`, `.dtype`, `len()`, `is None` tests, comparisons with strings, constants, and
parameters with constant defaults other than `None` (`train=False`, `axis=-1`) or Python-type
annotations (`bool`, `int`, `Sequence[int]`).
Rules about Python control flow apply under `jit`/`vmap`/`lax` bodies, not under `grad` alone.
When the linter is unsure whether a value is traced, it does not flag (precision first).
Framework packages themselves (`jax`, `flax`, `haiku`, `optax`, ...) are checked where they are
traced roots, but calls into them are not followed: they handle tracers on purpose.

## Usage

```
flaxify lint PATH... [--select CODES] [--ignore CODES] [--extend-select CODES]
                     [--format text|json|sarif|github] [--fix [--unsafe-fixes]] [--exit-zero]
                     [-j N] [--no-cache] [--cache-dir DIR]
```

* `python -m flaxify.lint PATH...` is the same command without loading the other `flaxify`
  commands (faster start, e.g. in scripts and hooks).
* Exit codes: `0` no findings, `1` findings or a file that does not parse (reported as `JX001`,
  the other files are still linted), `2` usage error (missing path, unknown code, bad config).
* `--format text` prints `path:line:col: CODE message` (1-based); `json` a list of objects with
  `path`, `line`, `column`, `end_line`, `end_column`, `code`, `name`, `message`, `fix` (null, or
  `{applicability, message, edits: [{content, location, end_location}]}`); `sarif` SARIF 2.1.0 with
  `tool.driver.rules` (for GitHub code scanning); `github` workflow-command annotations.
* `--fix` applies safe fixes in place and reports what remains; `--unsafe-fixes` adds fixes that
  may change behaviour (each rule's "Fix safety" says which).
* `# noqa: JX101` (or `# noqa: JX101, JX204`, or a bare `# noqa`) on the first or last line of a
  finding suppresses it; `# flaxify: noqa` on its own line skips a whole file.
* A content-keyed cache (`.flaxify_cache/`, or `--cache-dir`, or `$FLAXIFY_CACHE_DIR`) returns the
  stored result when no linted file, setting or version changed; `--no-cache` turns it off.
* `-j N` shards parsing and the per-file rules over N processes (one package included); the
  project-wide analysis stays in one process. Output is identical to one process; below about
  3 MB of source it runs in one process (sharding would cost more than it saves).

## Configuration

```toml
[tool.flaxify.lint]
select = ["JX"]                 # codes or prefixes; default: every rule that is on by default
ignore = ["JX110"]
extend-select = ["JX901"]       # e.g. the off-by-default "Haiku is still imported"
unsafe-fixes = false

[tool.flaxify.lint.per-file-ignores]
"tests/*" = ["JX101"]
```

Ruff semantics: when `select` and `ignore` both match, the more specific prefix wins and a tie goes
to `ignore`; `--select` on the command line replaces `select`, `--ignore` adds to `ignore`. The
codes' `JX` prefix is not one of ruff's; add `lint.external = ["JX"]` to ruff's settings so ruff
keeps `# noqa: JX...` comments.

## pre-commit

```yaml
repos:
  - repo: https://github.com/flaxify/flaxify
    rev: v0.1.0
    hooks:
      - id: flaxify-lint          # or flaxify-lint-fix to apply safe fixes
      - id: flaxify-no-haiku      # fails while any file still imports Haiku (JX901)
```
"""


def render() -> str:
    parts = [INTRO, "## Rules\n", "| code | name | on by default | fix |", "| --- | --- | --- | --- |",
             "| JX001 | syntax-error | yes | — |"]
    for rule in RULES:
        fix = _fix_kind(rule)
        parts.append(f"| [{rule.CODE}](#{rule.CODE.lower()}) | {rule.NAME} | {'yes' if rule.DEFAULT else 'no'} | {fix} |")
    parts.append("")
    parts.append("### JX001\n\n`syntax-error`: the file could not be read as UTF-8 or parsed; it is reported at the "
                 "error's position and the other files are still linted.\n")
    for rule in RULES:
        doc = inspect.cleandoc(rule.__doc__ or "").replace("## ", "#### ")
        parts.append(f"### {rule.CODE}\n\n`{rule.NAME}`" + ("" if rule.DEFAULT else " (off by default)") + "\n")
        parts.append(doc + "\n")
    return "\n".join(parts)


def _fix_kind(rule: type[Rule]) -> str:
    invalid = [case for case in rule.INVALID if isinstance(case, Invalid) and case.fixed is not None]
    if not invalid:
        return "—"
    text = (rule.__doc__ or "").split("## Fix safety", 1)[-1].strip().lower()
    return "unsafe" if text.startswith("unsafe") else "safe"


if __name__ == "__main__":
    print(render(), end="")
