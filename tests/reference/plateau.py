"""NumPy reference of ``ReduceLROnPlateau`` as torch documents it (mode min/max, relative
threshold), with the threshold taken relative to ``|best|`` and an absolute term, values
averaged over windows of ``accumulation_size``, and the learning rate expressed as a scale.

Per evaluation: if the value beats ``best`` by more than ``rtol * |best| + atol`` it becomes
``best`` and the bad-epoch count restarts, else the count grows; during cooldown the counter of
cooldown decreases and the bad count is reset; when the bad count exceeds ``patience`` the scale
is multiplied by ``factor`` (not below ``min_scale``), cooldown starts and the count restarts.
"""

from __future__ import annotations

import math


def reduce_on_plateau(values, factor=0.1, patience=10, rtol=1e-4, atol=0.0, cooldown=0,
                      accumulation_size=1, min_scale=0.0, maximize=False):
    """The scale after each value of ``values``."""
    scale, best, bad, cooling = 1.0, None, 0, 0
    window, out = [], []
    for v in values:
        window.append(v)
        if len(window) == accumulation_size:
            current = sum(window) / accumulation_size
            window = []
            if best is None:
                improved = math.isfinite(current)
            elif maximize:
                improved = current > best + rtol * abs(best) + atol
            else:
                improved = current < best - rtol * abs(best) - atol
            if improved:
                best, bad = current, 0
            else:
                bad += 1
            if cooling > 0:
                cooling -= 1
                bad = 0
            if bad > patience:
                scale = max(scale * factor, min_scale)
                cooling, bad = cooldown, 0
        out.append(scale)
    return out
