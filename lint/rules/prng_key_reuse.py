"""JX302: the same PRNG key consumed twice."""

from __future__ import annotations

import ast

from flaxify.lint.rule import Rule, TracedContext

NOT_CONSUMING = frozenset({"key", "PRNGKey", "key_data", "wrap_key_data", "fold_in", "clone", "key_impl",
                           "default_prng_impl"})
State = dict[str, ast.Call]


class PrngKeyReuse(Rule):
    """
    ## What it does
    Flags a PRNG key variable passed to a second ``jax.random`` function (``split``
    included) without being reassigned in between, including inside a loop body that never
    re-splits it. Branches of an ``if`` are independent; ``fold_in`` does not consume.

    ## Why is this bad?
    The same key gives the same numbers: ``a`` and ``b`` below are identical, silently.
    "Never reuse keys (unless you want identical outputs)."

    ## Example
    ```python
    def init(key):
        w = jax.random.normal(key, (3,))
        b = jax.random.normal(key, (3,))
    ```

    ## Use instead
    ```python
    def init(key):
        k1, k2 = jax.random.split(key)
        w = jax.random.normal(k1, (3,))
        b = jax.random.normal(k2, (3,))
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX302"
    NAME = "prng-key-reuse"
    MESSAGE = ("PRNG key `{name}` was already used at line {line}; reusing it gives identical random numbers — "
               "split it (`{name}, sub = jax.random.split({name})`)")
    VALID = [
        "import jax\n@jax.jit\ndef f(key):\n    key, sub = jax.random.split(key)\n    a = jax.random.normal(sub, (2,))\n"
        "    b = jax.random.normal(key, (2,))\n    return a + b",
        "import jax\n@jax.jit\ndef f(key, x, train=True):\n    if train:\n        return jax.random.normal(key, (2,))\n"
        "    return jax.random.uniform(key, (2,))",
        "import jax\n@jax.jit\ndef f(key):\n    out = 0.0\n    for i in range(3):\n"
        "        out += jax.random.normal(jax.random.fold_in(key, i))\n    return out",
        "import jax\n@jax.jit\ndef f(key):\n    keys = jax.random.split(key, 3)\n    out = 0.0\n"
        "    for key in keys:\n        out += jax.random.normal(key)\n    return out",
    ]
    INVALID = [
        "import jax\n@jax.jit\ndef f(key):\n    a = jax.random.normal(key, (2,))\n    b = jax.random.normal(key, (2,))\n"
        "    return a + b",
        "import jax\n@jax.jit\ndef f(key):\n    k1, k2 = jax.random.split(key)\n    return jax.random.normal(key) + k1 + k2",
        "import jax\n@jax.jit\ndef f(key):\n    out = 0.0\n    for i in range(3):\n"
        "        out += jax.random.normal(key)\n    return out",
    ]

    def check(self, ctx: TracedContext) -> None:
        body = ctx.fn.node.body
        if isinstance(body, list) and "random" in ctx.module.source:
            self._block(body, {}, ctx)

    # --- a small abstract interpreter over statements ----------------------------------
    def _block(self, stmts: list[ast.stmt], state: State, ctx: TracedContext) -> bool:
        """Runs ``stmts``; returns True when the block always leaves (return/raise)."""
        for stmt in stmts:
            if self._stmt(stmt, state, ctx):
                return True
        return False

    def _stmt(self, stmt: ast.stmt, state: State, ctx: TracedContext) -> bool:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return False
        if isinstance(stmt, ast.If):
            self._consume(stmt.test, state, ctx)
            left, right = dict(state), dict(state)
            left_exit = self._block(stmt.body, left, ctx)
            right_exit = self._block(stmt.orelse, right, ctx)
            state.clear()
            if not left_exit:
                state.update(left)
            if not right_exit:
                state.update(right)
            return left_exit and right_exit
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            self._consume(stmt.iter if not isinstance(stmt, ast.While) else stmt.test, state, ctx)
            inner = dict(state)
            if not isinstance(stmt, ast.While):  # `for key in keys:` binds a fresh key each iteration
                for name in (n.id for n in ast.walk(stmt.target) if isinstance(n, ast.Name)):
                    inner.pop(name, None)
            self._block(stmt.body, inner, ctx)
            self._loop_reuse(stmt, ctx)
            state.update(inner)
            self._block(stmt.orelse, state, ctx)
            return False
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self._consume(item.context_expr, state, ctx)
            return self._block(stmt.body, state, ctx)
        if isinstance(stmt, ast.Try):
            self._block(stmt.body, state, ctx)
            for handler in stmt.handlers:
                self._block(handler.body, dict(state), ctx)
            self._block(stmt.orelse, state, ctx)
            return self._block(stmt.finalbody, state, ctx)
        self._consume(stmt, state, ctx)
        for name in _stored_names(stmt):
            state.pop(name, None)
        return isinstance(stmt, (ast.Return, ast.Raise))

    def _consume(self, node: ast.AST, state: State, ctx: TracedContext) -> None:
        for call in _calls_in_order(node):
            name = self._consumed_key(call, ctx)
            if name is None:
                continue
            if name in state:
                ctx.report(call, self.MESSAGE.format(name=name, line=state[name].lineno))
            state[name] = call

    def _consumed_key(self, call: ast.Call, ctx: TracedContext) -> str | None:
        qualname = ctx.qualname(call.func)
        if not qualname or not qualname.startswith("jax.random.") or qualname.count(".") != 2:
            return None
        if qualname.rpartition(".")[2] in NOT_CONSUMING:
            return None
        key = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "key"), None)
        return key.id if isinstance(key, ast.Name) else None

    def _loop_reuse(self, loop: ast.For | ast.AsyncFor | ast.While, ctx: TracedContext) -> None:
        """A key consumed in every iteration but never reassigned in the loop."""
        assigned = {n for stmt in loop.body for n in _stored_names(stmt)}
        if isinstance(loop, (ast.For, ast.AsyncFor)):
            assigned |= {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
        for stmt in loop.body:
            for call in _calls_in_order(stmt):
                name = self._consumed_key(call, ctx)
                if name is not None and name not in assigned:
                    ctx.report(call, f"PRNG key `{name}` is used in every loop iteration without being split, so "
                                     f"each iteration draws the same numbers; split or `fold_in` it per iteration")


def _calls_in_order(node: ast.AST) -> list[ast.Call]:
    found: list[ast.Call] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(current, ast.Call):
            found.append(current)
        stack.extend(reversed(list(ast.iter_child_nodes(current))))
    found.sort(key=lambda c: (c.lineno, c.col_offset))
    return found


def _stored_names(stmt: ast.stmt) -> list[str]:
    return [n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
