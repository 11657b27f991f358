"""flax glue: ``flax.serialization`` support for gradxform optimizer states.

Importing this module registers :class:`~gradxform.OptState` with ``flax.serialization``, so
``to_bytes`` / ``from_bytes`` / ``to_state_dict`` / ``from_state_dict`` accept training states
that hold gradxform optimizer states (a linen ``TrainState``, a dict of params and state)::

    import gradxform.contrib.flax  # noqa: F401  (registers OptState)
    from flax import serialization

    data = serialization.to_bytes(train_state)
    restored = serialization.from_bytes(fresh_train_state, data)

The state dict of an ``OptState`` is ``{"count": ..., "inner": ...}`` (the inner states'
NamedTuples, tuples and dicts are handled by flax as usual). The param spec is not stored: it is
static metadata, taken from the restore target, which must therefore be a state built by
``init`` for params of the same structure, shapes and dtypes (as flax requires of every target).

flax's linen ``TrainState``, ``nnx.Optimizer`` and orbax need nothing from here: gradxform
transformations and states are plain pytrees to them.
"""

from __future__ import annotations

from typing import Any

from flax import serialization

from gradxform._src.base import OptState

__all__ = ["register"]


def _to_state_dict(state: OptState) -> dict[str, Any]:
    return {"count": serialization.to_state_dict(state.count),
            "inner": serialization.to_state_dict(state.inner)}


def _from_state_dict(target: OptState, state: dict[str, Any]) -> OptState:
    missing = {"count", "inner"} - set(state)
    if missing:
        raise ValueError(
            f"gradxform.contrib.flax: the state dict of an OptState needs the keys 'count' and "
            f"'inner', missing {sorted(missing)} at {serialization.current_path()}"
        )
    count = serialization.from_state_dict(target.count, state["count"], name="count")
    inner = serialization.from_state_dict(target.inner, state["inner"], name="inner")
    return OptState(count, inner, target.spec)


def register() -> None:
    """Register :class:`~gradxform.OptState` with ``flax.serialization`` (idempotent)."""
    serialization.register_serialization_state(OptState, _to_state_dict, _from_state_dict,
                                               override=True)


register()
