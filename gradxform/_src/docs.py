"""Argument descriptions written once and reused in docstrings.

A docstring line ``<<name>>`` (alone on its line, indented like an argument) is replaced by the
text of ``ARGS[name]`` at that indentation, by the :func:`args` decorator.
"""

from __future__ import annotations

import re
import textwrap

__all__ = ["ARGS", "args"]

ARGS = {
    "learning_rate": "learning_rate: the step size, a number >= 0, an array or a schedule.",
    "mu_dtype": (
        "mu_dtype: dtype of the first moment. Default: float32 for bfloat16/float16 params, "
        "the params' dtype otherwise (see the dtype policy)."
    ),
    "nu_dtype": (
        "nu_dtype: dtype of the second moment (real even for complex params). Default as for "
        "``mu_dtype``."
    ),
    "accumulator_dtype": (
        "accumulator_dtype: dtype of the accumulator. Default: float32 for bfloat16/float16 "
        "params, the params' dtype otherwise (see the dtype policy)."
    ),
    "eps": "eps: added to the denominator for numerical stability, > 0.",
    "eps_root": "eps_root: added inside the square root, >= 0.",
    "b1": "b1: first-moment decay in [0, 1).",
    "b2": "b2: second-moment decay in [0, 1).",
    "weight_decay": (
        "weight_decay: decoupled weight decay rate lambda >= 0 (a number, array or schedule). "
        "It is multiplied by the learning rate, as in optax and torch's AdamW."
    ),
    "mask": (
        "mask: which leaves receive weight decay: a tree of bools with the params' structure (or "
        "a prefix of it), a callable ``params -> tree of bools``, a regular expression searched "
        "in the leaves' path strings, or a ``by_regex``/``by_path`` rule. Default: all leaves. "
        "A mask that selects no leaf is an error (see :mod:`gradxform._src.combine`)."
    ),
    "nesterov": "nesterov: use Nesterov's look-ahead form of momentum.",
    "inner": "inner: the wrapped transformation (gradxform or optax).",
    "axis_name_finite": (
        "axis_name: inside ``shard_map``/``pmap`` over shards of one tree, the mapped axis "
        "name(s) over which finiteness is agreed, so one shard's overflow skips the step on all."
    ),
    "axis_name": (
        "axis_name: inside ``jax.shard_map``, the mapped axis over which every leaf is split along "
        "its leading dimension (scalars are replicated); the reductions over a whole leaf are then "
        "summed over it, so the result equals the unsharded one. ``None`` (default): leaves are "
        "whole."
    ),
    "ratio_at_zero_norm": (
        "ratio_at_zero_norm: the trust ratio where the param norm or the denominator is zero, "
        ">= 0: 1 (default; optax and the authors' code: a leaf of zeros, such as a bias, still "
        "moves) or 0 (the papers' formula taken literally: a leaf of zeros never moves)."
    ),
    "hyper": (
        "Every float argument accepts a number, an array or a schedule; numbers are range-checked "
        "when the value is built."
    ),
}

_LINE = re.compile(r"^(?P<indent>[ \t]*)<<(?P<name>\w+)>>[ \t]*$", re.MULTILINE)


def args(obj):
    """Fill ``<<name>>`` lines of ``obj.__doc__`` from :data:`ARGS`."""

    def fill(match: re.Match) -> str:
        indent = match.group("indent")
        text = ARGS[match.group("name")]
        return textwrap.fill(text, width=96, initial_indent=indent,
                             subsequent_indent=indent + "  ")

    if obj.__doc__:
        obj.__doc__ = _LINE.sub(fill, obj.__doc__)
    return obj
