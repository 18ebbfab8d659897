"""``hk.SpectralNorm`` / ``hk.SNParamsTree`` -> exact Linen ports (emitted once per file).

``nn.SpectralNorm`` wraps a *layer* and normalises its kernel; Haiku's
``SpectralNorm(eps, n_steps)`` is called on a *tensor* (usually a weight read
with ``hk.get_parameter``) and returns it divided by its largest singular
value, estimated by ``n_steps`` of power iteration from the state ``u0``. The
emitted ``SpectralNorm`` computes exactly what ``haiku/_src/spectral_norm.py``
computes, operation for operation (``_l2_normalize`` is
``x * rsqrt(sum(x * x) + eps)``, the matmuls, ``stop_gradient`` and the final
``v0 @ value @ u0.T`` in Haiku's order), and keeps Haiku's state:

* ``u0`` (shape ``(1, n)``, the input's dtype) and ``sigma`` (a scalar) in the
  ``"state"`` collection, so a checkpoint's state converts by copying;
* ``update_stats``: both are written only when asked; during ``init`` ``u0``
  keeps its drawn value and ``sigma`` records the first estimate (Haiku's
  ``get_state`` / ``set_state`` ``init`` semantics);
* ``error_on_non_matrix`` and Haiku's errors for scalars and vectors; higher
  rank inputs are flattened in their leading dimensions;
* the ``u0`` and ``sigma`` properties.

Haiku draws the initial ``u0`` from ``hk.next_rng_key()``; the port draws it
from ``self.make_rng("params")``, so a fresh ``init`` gives other ``u0`` values
(same distribution). With Haiku's state mapped in (``flaxify check``,
``convert-params``) the outputs are bit-identical. One ``SpectralNorm`` called
twice in one ``init``: Haiku's second call already sees the first call's ``u0``
(its *current* value) while ``init`` returns the initial one; the port's second
call sees the initial ``u0``. The state ``init`` returns is the same, only the
(discarded) init-time output of the second call differs; ``apply`` is exact.

``SNParamsTree(eps, n_steps, ignore_regex)`` keeps one such ``SpectralNorm`` per
leaf of the tree it is called on, named after the leaf's path
``"<module>/<param>"`` with ``/`` -> ``__`` and ``~`` -> ``_tilde`` (Haiku's
spelling here, unlike ``EMAParamsTree``'s ``_tilde_``); leaves matching
``ignore_regex`` (``re.match``) pass through. As for ``EMAParamsTree``
(``ema_tree.py``) the pattern and the state names follow the tree it is given:
a migrated program passing Flax parameters has Flax names (``kernel``/``bias``,
no ``~``), so a given ``ignore_regex`` is rewritten *and* marked with a TODO.

Examples::

    hk.SpectralNorm()(w, update_stats=is_training)
        -> SpectralNorm(name="spectral_norm")(w, update_stats=is_training)
    hk.SNParamsTree(ignore_regex=".*b$", eps=1e-6)
        -> SNParamsTree(eps=1e-6, ignore_regex=".*b$", name="sn_params_tree")   (+ TODO on the pattern)
"""

from __future__ import annotations

from flaxify.migrate.layers_common import Bound, Ctx, Signature, code, flax_call, literal, name_arg
from flaxify.migrate.layers_linear import Args
from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec, Rewrite, Unsupported

SPECTRAL_NORM = Signature("hk.SpectralNorm", ("eps", "n_steps", "name"))
SN_PARAMS_TREE = Signature("hk.SNParamsTree", ("eps", "n_steps", "ignore_regex", "name"))

SPECTRAL_NORM_SOURCE = '''class SpectralNorm({nn}.Module):
    """Haiku's hk.SpectralNorm: value / sigma by power iteration on u0; u0 and sigma in "state", written when update_stats.

    u0 starts from the "params" RNG (Haiku draws it from hk.next_rng_key), so a fresh init has other u0 values
    (same distribution); with Haiku's state mapped in, the outputs are bit-identical.
    """

    eps: float = 1e-4
    n_steps: int = 1

    @{nn}.compact
    def __call__(self, value, update_stats=True, error_on_non_matrix=False):
        value = {jnp}.asarray(value)
        value_shape = value.shape
        if value.ndim <= 1:
            raise ValueError("Spectral normalization is not well defined for scalar or vector inputs.")
        elif value.ndim > 2:
            if error_on_non_matrix:
                raise ValueError(f"Input is {{value.ndim}}D but error_on_non_matrix is True")
            value = {jnp}.reshape(value, [-1, value.shape[-1]])
        u0_state = self.variable(
            "state", "u0", lambda: jax.random.normal(self.make_rng("params"), (1, value.shape[-1]), value.dtype)
        )

        def l2_normalize(x):  # Haiku's _l2_normalize: the same operations in the same order, for bit-identical results
            return x * jax.lax.rsqrt((x * x).sum(axis=None, keepdims=True) + self.eps)

        u0 = u0_state.value
        for _ in range(self.n_steps):
            v0 = l2_normalize({jnp}.matmul(u0, value.transpose([1, 0])))
            u0 = l2_normalize({jnp}.matmul(v0, value))
        u0 = jax.lax.stop_gradient(u0)
        v0 = jax.lax.stop_gradient(v0)
        sigma = {jnp}.matmul({jnp}.matmul(v0, value), {jnp}.transpose(u0))[0, 0]
        value /= sigma
        value_bar = value.reshape(value_shape)
        if update_stats:
            if not self.is_initializing():  # Haiku's init keeps get_state entries (u0) at their initial values
                u0_state.value = u0
                self.put_variable("state", "sigma", sigma)
            elif not self.has_variable("state", "sigma"):  # ... and records what set_state creates (sigma)
                self.put_variable("state", "sigma", sigma)
        return value_bar

    @property
    def u0(self):
        return self.get_variable("state", "u0")

    @property
    def sigma(self):
        """Haiku's ``sigma``: ones (created if the state is mutable) until a call with ``update_stats`` writes it."""
        if not self.has_variable("state", "sigma") and self.is_mutable_collection("state"):
            self.put_variable("state", "sigma", {jnp}.ones(()))
        return self.get_variable("state", "sigma", {jnp}.ones(()))
'''

SN_PARAMS_TREE_SOURCE = '''class SNParamsTree({nn}.Module):
    """Haiku's hk.SNParamsTree: one SpectralNorm per leaf "module/param", named module__param (~ -> _tilde)."""

    eps: float = 1e-4
    n_steps: int = 1
    ignore_regex: str = ""

    @{nn}.compact
    def __call__(self, tree, update_stats=True):
        def maybe_sn(path, value):
            if self.ignore_regex and re.match(self.ignore_regex, path):
                return value
            sn = SpectralNorm(self.eps, self.n_steps, name=path.replace("/", "__").replace("~", "_tilde"))
            return sn(value, update_stats=update_stats)

        def walk(path, node):
            if isinstance(node, Mapping):
                return {{key: walk(path + [key], value) for key, value in node.items()}}
            return maybe_sn("/".join(path), node)

        return {{name: walk([name], node) for name, node in tree.items()}}
'''

_TREE_IMPORTS = (ImportSpec("re", None, None), ImportSpec("collections.abc", "Mapping", None))

#: Haiku name -> (emitted name, source template, imports), as ``recurrent.HELPERS``.
HELPERS = {
    "SpectralNorm": ("SpectralNorm", SPECTRAL_NORM_SOURCE, (JAX_IMPORT,)),
    "SNParamsTree": ("SNParamsTree", SN_PARAMS_TREE_SOURCE, _TREE_IMPORTS),
}
#: ``SNParamsTree`` builds the emitted ``SpectralNorm``.
DEPENDENCIES = {"SNParamsTree": ("SpectralNorm",)}

_REGEX_NOTE = (
    "ignore_regex is matched against the 'module/param' paths of the tree SNParamsTree is given, and the u0/sigma"
    " state is named after them: a migrated program passing Flax params has Flax names (kernel/bias, no '~'),"
    " so check the pattern and rename the keys of a converted state"
)


def helper_source(tail: str, *, nn: str, jnp: str) -> tuple[str, str, tuple[ImportSpec, ...]] | None:
    """``(name, source, imports)`` of the helper emitted for ``haiku.<tail>``, else None."""
    found = HELPERS.get(tail)
    if found is None:
        return None
    name, template, imports = found
    return name, template.format(nn=nn, jnp=jnp), imports


def _power_iteration_args(bound: Bound) -> Args:
    """``eps`` and ``n_steps``, by keyword, when they differ from Haiku's defaults (which the helper shares)."""
    args: Args = []
    if "eps" in bound and literal(bound["eps"]) != 1e-4:
        args.append(("eps", code(bound["eps"])))
    if "n_steps" in bound and literal(bound["n_steps"]) != 1:
        args.append(("n_steps", code(bound["n_steps"])))
    return args


def spectral_norm(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.SpectralNorm(eps, n_steps)`` -> the exact helper (its call is unchanged)."""
    return Rewrite(flax_call("SpectralNorm", _power_iteration_args(bound) + name_arg(bound, ctx.name)))


def sn_params_tree(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.SNParamsTree(eps, n_steps, ignore_regex)`` -> the exact helper, a TODO on a given pattern."""
    args = _power_iteration_args(bound)
    note = None
    if "ignore_regex" in bound and literal(bound["ignore_regex"]) != "":
        args.append(("ignore_regex", code(bound["ignore_regex"])))
        note = _REGEX_NOTE
    return Rewrite(flax_call("SNParamsTree", args + name_arg(bound, ctx.name)), note=note)


#: Haiku class -> (signature, handler), for ``layers.LAYERS``.
LAYERS = {
    "SpectralNorm": (SPECTRAL_NORM, spectral_norm),
    "SNParamsTree": (SN_PARAMS_TREE, sn_params_tree),
}
