"""How the wrappers compose: one table of what each nesting means, checked when a wrapper is built.

The wrappers with a clock of their own (``accumulate``, ``skip_non_finite``,
``dynamic_loss_scale``) and the ones that follow the params (``ema_params`` / ``swa_params``,
``lookahead``) can be nested in either order. The principles:

* **An update counts when it reaches the params.** ``ema_params``, ``swa_params`` and
  ``lookahead`` move (and count their periods) only on such updates: once per window of an
  inner ``accumulate``, never on a step an inner ``skip_non_finite`` or ``dynamic_loss_scale``
  skipped (:meth:`~gradxform.GradientTransformation.applied`).
* **A skipped micro-batch does not shift the windows.** Around ``accumulate`` (as its direct
  inner transformation), ``skip_non_finite`` and ``dynamic_loss_scale`` drop the bad micro-batch
  from its window, which still ends on time.
* **A nesting that does nothing warns, one that breaks a wrapper raises** (for example a
  ``skip_non_finite`` outside ``dynamic_loss_scale``: the scale would never see an overflow).

:data:`RULES` is the table (the documentation page on wrappers shows it);
:func:`check_nesting` applies it in each wrapper's ``check``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

__all__ = ["Rule", "RULES", "KINDS", "check_nesting", "windowed", "kind_of", "rule_for"]

KINDS = ("accumulate", "skip_non_finite", "dynamic_loss_scale", "ema_params", "lookahead")
"""The wrappers the table covers (``ema_params`` stands for ``swa_params`` too; ``MultiSteps``
is an ``accumulate``)."""


def kind_of(t: Any) -> str | None:
    """Which wrapper of :data:`KINDS` ``t`` is, or ``None``: the wrappers name their kind in the
    class attribute ``composition_kind`` (so this table imports none of them)."""
    kind = getattr(type(t), "composition_kind", None)
    return kind if kind in KINDS else None


# A type for the checker only: at run time a Protocol class carries typing internals that the
# API reference (griffe) cannot resolve, and nothing needs the class there.
if TYPE_CHECKING:

    class Windowed(Protocol):
        """What a wrapper of kind ``accumulate`` offers the wrappers around it."""

        @property
        def name(self) -> str:
            """The transformation's name (for links and messages)."""
            ...

        def accumulate(self, updates: Any, state: Any, params: Any, step: Any,
                       keep: Any) -> tuple[Any, Any]:
            """One micro-batch, used if ``keep`` (else dropped from its window)."""
            ...


def windowed(t: Any) -> TypeGuard[Windowed]:
    """True if ``t`` is an ``accumulate``: a wrapper that skips updates hands it the skip as a
    dropped micro-batch instead of not calling it."""
    return kind_of(t) == "accumulate"


def _always(outer: Any, inner: Any, direct: bool) -> bool:
    return True


def _drops(outer: Any, inner: Any, direct: bool) -> bool:
    return bool(outer.drop_non_finite)


def _keeps(outer: Any, inner: Any, direct: bool) -> bool:
    return not outer.drop_non_finite


def _direct(outer: Any, inner: Any, direct: bool) -> bool:
    return direct


def _nested(outer: Any, inner: Any, direct: bool) -> bool:
    return not direct


@dataclasses.dataclass(frozen=True)
class Rule:
    """What ``outer(... inner ...)`` means.

    Attributes:
      outer: the kind of the outer wrapper (one of :data:`KINDS`).
      inner: the kind of a wrapper inside it (anywhere below, unless ``when`` says "direct").
      verdict: ``"ok"``, ``"warning"`` (the nesting does nothing useful) or ``"error"`` (it
        would break one of the wrappers).
      meaning: what the nesting does, or why it is refused and what to write instead.
      when: the condition, in words (``None``: always).
      applies: the condition, as ``applies(outer, inner, direct)``.
    """

    outer: str
    inner: str
    verdict: str
    meaning: str
    when: str | None = None
    applies: Callable[[Any, Any, bool], bool] = _always


A, S, L, E, K = KINDS

RULES: tuple[Rule, ...] = (
    Rule(A, A, "warning", "windows of windows: the inner `accumulate` applies once every "
         "product of the two `every_k`; one `accumulate` with that `every_k` does the same."),
    Rule(A, S, "warning", "the inner `skip_non_finite` never fires: `accumulate` drops "
         "non-finite micro-batches before it sees the window's mean. To skip a whole window "
         "when any of its micro-batches is non-finite, pass `drop_non_finite=False`.",
         "drop_non_finite=True", _drops),
    Rule(A, S, "ok", "a window holding a non-finite micro-batch is skipped whole (its mean is "
         "non-finite); the inner optimizer's clock does not advance.",
         "drop_non_finite=False", _keeps),
    Rule(A, L, "error", "`accumulate` drops overflowing micro-batches before the loss scale "
         "sees them, so the scale would never back off. Put the loss scale outside, "
         "`dynamic_loss_scale(accumulate(...))`, or pass `drop_non_finite=False`.",
         "drop_non_finite=True", _drops),
    Rule(A, L, "ok", "the loss scale sees each window's mean: an overflow in any micro-batch "
         "skips the window and backs the scale off; the scale changes between windows only.",
         "drop_non_finite=False", _keeps),
    Rule(A, E, "ok", "the average moves once per window, with the window's update."),
    Rule(A, K, "ok", "`lookahead` runs once per window: it syncs every `sync_period` windows."),
    Rule(S, A, "ok", "a non-finite micro-batch is dropped from its window (counted in "
         "`skipped` and `dropped`); the window still ends on time, so updates land every "
         "`every_k` micro-batches.", "`accumulate` is the direct inner transformation",
         _direct),
    Rule(S, A, "error", "a skipped micro-batch would shift the windows of an `accumulate` "
         "nested deeper: make it the direct inner transformation, "
         "`skip_non_finite(accumulate(chain(...)))`.",
         "`accumulate` is nested deeper", _nested),
    Rule(S, S, "warning", "the inner `skip_non_finite` never fires: the outer one skips "
         "non-finite updates first."),
    Rule(S, L, "error", "`skip_non_finite` would skip the overflows before the loss scale sees "
         "them, so the scale would never back off; `dynamic_loss_scale` skips overflowing steps "
         "itself: use it alone."),
    Rule(S, E, "ok", "a skipped step leaves the average unchanged."),
    Rule(S, K, "ok", "a skipped step does not count towards the sync period."),
    Rule(L, A, "ok", "an overflowing micro-batch is dropped from its window and the scale backs "
         "off at once; the window still ends on time.",
         "`accumulate` is the direct inner transformation", _direct),
    Rule(L, A, "error", "an overflow would shift the windows of an `accumulate` nested deeper: "
         "make it the direct inner transformation, `dynamic_loss_scale(accumulate(...))`.",
         "`accumulate` is nested deeper", _nested),
    Rule(L, S, "warning", "the inner `skip_non_finite` never fires: `dynamic_loss_scale` skips "
         "non-finite steps first."),
    Rule(L, L, "error", "two loss scales: the loss can be multiplied by one scale only."),
    Rule(L, E, "ok", "an overflowing step leaves the average unchanged."),
    Rule(L, K, "ok", "an overflowing step does not count towards the sync period."),
    Rule(E, A, "ok", "the average moves once per window, when the update reaches the params, "
         "not at every micro-batch (its decay is per applied update)."),
    Rule(E, S, "ok", "a skipped step leaves the average unchanged."),
    Rule(E, L, "ok", "an overflowing step leaves the average unchanged."),
    Rule(E, E, "error", "two averages of the same params; `averaged_params` reads one. Keep "
         "one."),
    Rule(E, K, "ok", "the average of the params `lookahead` leaves after each update (the "
         "synced ones after a sync)."),
    Rule(K, A, "ok", "`lookahead` counts applied updates: it syncs every `sync_period` "
         "windows."),
    Rule(K, S, "ok", "a skipped step does not count towards the sync period."),
    Rule(K, L, "ok", "an overflowing step does not count towards the sync period."),
    Rule(K, E, "error", "the average would follow the fast weights before `lookahead` resets "
         "them at a sync. Put it outside: `ema_params(lookahead(...))`."),
    Rule(K, K, "ok", "nested lookahead: the inner one's slow weights are the fast weights of "
         "the outer one."),
)


def rule_for(outer: Any, inner: Any, direct: bool) -> Rule | None:
    """The rule of :data:`RULES` for ``outer`` with ``inner`` inside it (``None``: not a pair
    of the table)."""
    ko, ki = kind_of(outer), kind_of(inner)
    if ko is None or ki is None:
        return None
    for rule in RULES:
        if rule.outer == ko and rule.inner == ki and rule.applies(outer, inner, direct):
            return rule
    return None


def check_nesting(outer: Any, inner: Any) -> None:
    """Apply :data:`RULES` to every wrapper inside ``outer``: raise for an ``"error"`` rule, warn
    (``UserWarning``) for a ``"warning"`` one. Called from each wrapper's ``check``."""
    for t in inner.submodules():
        rule = rule_for(outer, t, t is inner)
        if rule is None or rule.verdict == "ok":
            continue
        text = (f"{kind_of(t)} inside it: {rule.meaning.replace('`', '')} See the "
                "wrapper-composition table of the documentation.")
        if rule.verdict == "error":
            raise outer.error(text)
        warnings.warn(f"{outer.name}: {text}", UserWarning, stacklevel=6)


def table_markdown() -> str:
    """:data:`RULES` as a Markdown table (the documentation page includes it)."""
    rows = ["| outer | inner | when | verdict | meaning |", "| --- | --- | --- | --- | --- |"]
    for r in RULES:
        rows.append(f"| `{r.outer}` | `{r.inner}` | {r.when or 'always'} | {r.verdict} | "
                    f"{r.meaning} |")
    return "\n".join(rows)
