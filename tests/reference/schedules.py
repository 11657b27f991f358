"""NumPy references for the schedules optax does not have, written from their definitions.

* ``cyclic``: torch.optim.lr_scheduler.CyclicLR (Smith 2017), its documented ``get_lr``.
* ``sgdr``: Keras ``CosineDecayRestarts`` (Loshchilov & Hutter 2017 with ``t_mul``, ``m_mul``),
  computed here by walking the cycles one by one instead of by the closed form.
* ``inverse_time``: Keras ``InverseTimeDecay``.
* ``inverse_sqrt``: fairseq's ``inverse_sqrt`` (linear warmup, then ``peak * sqrt(W / t)``).
"""

from __future__ import annotations

import math


def cyclic(t, base, top, up, down=None, mode="triangular", gamma=1.0):
    down = up if down is None else down
    total = up + down
    ratio = up / total
    cycle = math.floor(1 + t / total)
    x = 1.0 + t / total - cycle
    if x <= ratio:
        scale_factor = x / ratio
    else:
        scale_factor = (x - 1) / (ratio - 1)
    height = (top - base) * scale_factor
    if mode == "triangular":
        return base + height
    if mode == "triangular2":
        return base + height / (2.0 ** (cycle - 1))
    return base + height * gamma**t


def sgdr(t, init, first, t_mul=2.0, m_mul=1.0, alpha=0.0):
    start, length, peak = 0, first, 1.0
    while t >= start + length:          # walk the cycles
        start += length
        length *= t_mul
        peak *= m_mul
    cosine = 0.5 * peak * (1 + math.cos(math.pi * (t - start) / length))
    return init * ((1 - alpha) * cosine + alpha)


def inverse_time(t, init, decay_steps, decay_rate, staircase=False):
    p = t / decay_steps
    if staircase:
        p = math.floor(p)
    return init / (1 + decay_rate * p)


def inverse_sqrt(t, peak, warmup, init=0.0):
    if t < warmup:
        return init + (peak - init) * t / warmup
    return peak * math.sqrt(warmup / t)
