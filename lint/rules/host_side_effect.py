"""JX106: time, environment and I/O calls in traced code."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind
from flaxify.lint.rule import Rule, TracedContext

HOST_CALLS: dict[str, str] = {
    "time.time": "the time", "time.perf_counter": "the time", "time.monotonic": "the time",
    "time.time_ns": "the time", "time.process_time": "the time", "time.sleep": "a sleep",
    "datetime.datetime.now": "the time", "datetime.datetime.utcnow": "the time",
    "datetime.datetime.today": "the time", "datetime.date.today": "the date",
    "os.getenv": "the environment", "os.environ.get": "the environment", "os.system": "a shell command",
    "subprocess.run": "a subprocess", "subprocess.call": "a subprocess", "subprocess.check_output": "a subprocess",
    "input": "user input", "open": "a file", "builtins.open": "a file", "numpy.save": "a file",
    "numpy.load": "a file", "numpy.savez": "a file", "pickle.dump": "a file", "pickle.load": "a file",
    "json.dump": "a file", "json.load": "a file",
}


class HostSideEffectInTracedCode(Rule):
    """
    ## What it does
    Flags reading the clock, the environment, user input or files (``time.time()``,
    ``datetime.now()``, ``os.environ``, ``open(...)``) inside jitted code or helpers it reaches.

    ## Why is this bad?
    The call runs once at trace time and its result is baked into the compiled function
    as a constant: ``PRNGKey(int(time.time()))`` gives the same key forever
    (jax-ml/jax#1141); a file read never sees new contents.

    ## Example
    ```python
    @jax.jit
    def f(x):
        return x + time.time()
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x, t):
        return x + t
    f(x, time.time())
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX106"
    NAME = "host-side-effect-in-traced-code"
    MESSAGE = "reading {what} in traced code happens once at trace time and is baked in as a constant; pass it as an argument"
    MIN_KIND = Kind.STAGE
    VALID = [
        "import jax, time\ndef bench(f, x):\n    t = time.time()\n    f(x).block_until_ready()\n"
        "    return time.time() - t",
        "import jax, time\n@jax.jit\ndef f(x, t):\n    return x + t",
    ]
    INVALID = [
        "import jax, time\n@jax.jit\ndef f(x):\n    return x + time.time()",
        "import jax, os\n@jax.jit\ndef f(x):\n    scale = float(os.environ['SCALE'])\n    return x * scale",
        "import jax\nfrom datetime import datetime\n@jax.jit\ndef f(x):\n    return x + datetime.now().second",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        name = ctx.builtin(node.func) or ctx.qualname(node.func)
        what = HOST_CALLS.get(name or "")
        if what:
            ctx.report(node, self.MESSAGE.format(what=what))

    def visit_Subscript(self, node: ast.Subscript, ctx: TracedContext) -> None:
        if isinstance(node.ctx, ast.Load) and ctx.qualname(node.value) == "os.environ":
            ctx.report(node, self.MESSAGE.format(what="the environment"))
