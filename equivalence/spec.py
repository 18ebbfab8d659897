"""Input SPEC parsing: ``f32[8,28,28,1]``, ``bf16[4,16]``, ``i32[2,16]:0..50`` or ``x.npy``.

Random inputs are drawn from a NumPy generator seeded from the SPEC text
itself, so the same SPEC gives the same array in every run, on every machine,
and two different SPECs give independent draws.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

from flaxify.equivalence.errors import InvalidInputSpecError

# Short dtype names accepted in a SPEC, mapped to NumPy/ml_dtypes names.
DTYPES: dict[str, str] = {
    "f16": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "f64": "float64",
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "u8": "uint8",
    "u32": "uint32",
    "bool": "bool",
}

_SPEC_RE = re.compile(
    r"^(?P<dtype>[a-z0-9]+)\[(?P<shape>[0-9,\s]*)\]"
    r"(?::(?P<lo>-?[0-9.eE+-]+?)\.\.(?P<hi>-?[0-9.eE+-]+))?$"
)
_SPEC_HELP = "expected DTYPE[d0,d1,...] (e.g. f32[8,28,28,1]), i32[2,16]:0..50, or a .npy file"


def parse_spec(text: str, *, salt: int = 0) -> np.ndarray:
    """Returns the array described by ``text``.

    Args:
      text: ``DTYPE[shape]`` with an optional ``:lo..hi`` range (integers:
        uniform in ``[lo, hi)``; floats: uniform in ``[lo, hi)``; without a
        range floats are standard normal and integers cover ``[0, 10)``), or a
        path ending in ``.npy``.
      salt: mixed into the seed, so several inputs with the same SPEC differ.

    Raises:
      InvalidInputSpecError: the text is not a SPEC, names an unknown dtype, or
        the ``.npy`` file is missing or unreadable.
    """
    text = text.strip()
    if text.endswith(".npy"):
        return _load_npy(Path(text))
    match = _SPEC_RE.match(text)
    if match is None:
        raise InvalidInputSpecError(f"bad input SPEC {text!r}: {_SPEC_HELP}")
    dtype = _dtype(match["dtype"], text)
    shape = _shape(match["shape"], text)
    rng = np.random.default_rng(zlib.crc32(f"{salt}:{text}".encode()))
    lo, hi = match["lo"], match["hi"]
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return _draw_ints(rng, dtype, shape, lo, hi, text)
    if lo is not None:
        return rng.uniform(_number(lo, text), _number(hi, text), size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)


def _dtype(name: str, text: str) -> np.dtype:
    if name not in DTYPES:
        known = ", ".join(DTYPES)
        raise InvalidInputSpecError(f"bad input SPEC {text!r}: unknown dtype {name!r} (known: {known})")
    import ml_dtypes  # noqa: F401  (registers bfloat16 with NumPy; ships with jax)

    return np.dtype(DTYPES[name])


def _shape(body: str, text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in body.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise InvalidInputSpecError(f"bad input SPEC {text!r}: dimensions must be non-negative integers")
    return tuple(int(p) for p in parts)


def _number(value: str, text: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InvalidInputSpecError(f"bad input SPEC {text!r}: range bound {value!r} is not a number") from None


def _draw_ints(
    rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...], lo: str | None, hi: str | None, text: str
) -> np.ndarray:
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    low = 0 if lo is None else int(_number(lo, text))
    high = 10 if hi is None else int(_number(hi, text))
    if high <= low:
        raise InvalidInputSpecError(f"bad input SPEC {text!r}: empty range {low}..{high}")
    return rng.integers(low, high, size=shape).astype(dtype)


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InvalidInputSpecError(f"input file {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InvalidInputSpecError(f"input file {path} is not a readable .npy array: {exc}") from None
