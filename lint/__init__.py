"""``flaxify lint``: a static linter that knows what JAX traces.

Entry points: :func:`flaxify.lint.api.lint_paths` (paths -> findings) and the
rule table :data:`flaxify.lint.rules.RULES`.
"""
