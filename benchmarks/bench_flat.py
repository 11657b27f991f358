"""Flat parameter buffers against per-leaf trees, and the distance to the machine's bandwidth.

Sections (``--only`` picks some; all run by default):

``steps``       for each tree and optimizer: the jitted, donated ``update + apply_updates`` step of
                optax per leaf, gradxform per leaf, gradxform on ``FlatParams`` and gradxform on
                one leaf of the same size (the anchor), with a streaming triad moving the same
                bytes as the machine's bandwidth. Step time (median), effective GB/s, fraction
                of the triad, trace / lower / compile seconds measured apart, ratios.
``model``       an end-to-end training step (forward, backward, update) of a 16-block unrolled
                model, per leaf (optax, gradxform) and flat.
``assembly``    the update alone on that model's tree, the flat gradient given or assembled in
                the step from the per-leaf gradients: what the assembly costs.
``population``  32 small MLP trainings in one ``vmap`` against one after another.
``memory``      bytes of optimizer state per optimizer for the transformer-like tree.
``profile``     where the per-leaf path spends its trace time (cProfile, gradxform's frames).

Reading the tables. Times are medians over ``--reps`` interleaved rounds (the paths take turns,
each round ends with ``block_until_ready``), so a burst of load from elsewhere hits every path
alike; the ratios are the result, absolute times depend on the machine and its load, printed
at the start and the end (``os.getloadavg``). "GB/s" counts the bytes an optimizer must move
per step (``passes`` full-size float32 arrays read or written per parameter, listed with each
optimizer) over the step time; "% triad" divides it by the bandwidth of ``a = b + s * c`` on
the same number of bytes, jitted and donated, measured in the same rounds. Compile columns are
``jax.jit(step).trace``, ``.lower`` and ``.compile``, each timed once (a fresh function each).

    python benchmarks/bench_flat.py            # the full sizes of the issue (long: compiles)
    python benchmarks/bench_flat.py --quick    # small sizes, to check that it runs
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradxform as gx

# --------------------------------------------------------------------------------------------
# Trees.


def transformer_tree(blocks: int = 124, d: int = 104, vocab: int = 5200, ctx: int = 64) -> Any:
    """Embeddings, a final layer norm and ``blocks`` blocks of q/k/v/o with biases, an MLP
    (4x) with biases and two layer norms: 16 leaves per block. Defaults: 1988 leaves, 16.8M."""
    rng = np.random.default_rng(0)

    def a(*shape):
        return jnp.asarray(rng.normal(size=shape) * 0.02, jnp.float32)

    tree: dict[str, Any] = {"embed": a(vocab, d), "pos": a(ctx, d),
                            "ln_f": {"scale": a(d), "bias": a(d)}, "blocks": []}
    for _ in range(blocks):
        block = {n: {"w": a(d, d), "b": a(d)} for n in "qkvo"}
        block["mlp"] = {"w1": a(d, 4 * d), "b1": a(4 * d), "w2": a(4 * d, d), "b2": a(d)}
        block["ln1"] = {"scale": a(d), "bias": a(d)}
        block["ln2"] = {"scale": a(d), "bias": a(d)}
        tree["blocks"].append(block)
    return tree


def uniform_tree(leaves: int, rows: int, cols: int) -> Any:
    rng = np.random.default_rng(1)
    return {f"w{i:04d}": jnp.asarray(rng.normal(size=(rows, cols)) * 0.02, jnp.float32)
            for i in range(leaves)}


def one_leaf(size: int) -> Any:
    return {"w": jnp.asarray(np.random.default_rng(2).normal(size=size) * 0.02, jnp.float32)}


def trees(quick: bool) -> dict[str, Callable[[], Any]]:
    if quick:
        return {"1 leaf": lambda: one_leaf(200_000),
                "100 leaves": lambda: uniform_tree(100, 40, 50),
                "transformer": lambda: transformer_tree(blocks=8, d=32, vocab=512, ctx=16),
                "200 leaves": lambda: uniform_tree(200, 10, 10)}
    return {"1 leaf, 16.8M": lambda: one_leaf(16_809_520),
            "100 leaves, 16.8M": lambda: uniform_tree(100, 410, 410),
            "1988 leaves, 16.8M": transformer_tree,
            "200 leaves, 1M": lambda: uniform_tree(200, 50, 100)}


def size_of(tree: Any) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# --------------------------------------------------------------------------------------------
# Optimizers: (gradxform, optax, full-size float32 arrays read or written per step).

OPTIMIZERS: dict[str, tuple[Callable[[], Any], Callable[[], Any], int]] = {
    # g, m, p read; m, p written
    "sgd+momentum": (lambda: gx.sgd(1e-2, momentum=0.9),
                     lambda: optax.sgd(1e-2, momentum=0.9), 5),
    # g, m, v, p read; m, v, p written
    "adam": (lambda: gx.adam(1e-3), lambda: optax.adam(1e-3), 7),
    "adamw": (lambda: gx.adamw(1e-3, weight_decay=1e-4),
              lambda: optax.adamw(1e-3, weight_decay=1e-4), 7),
    # the gradients are read once more for the global norm
    "clip+adamw": (lambda: gx.chain(gx.clip_by_global_norm(1.0),
                                    gx.adamw(1e-3, weight_decay=1e-4)),
                   lambda: optax.chain(optax.clip_by_global_norm(1.0),
                                       optax.adamw(1e-3, weight_decay=1e-4)), 8),
    "lion": (lambda: gx.lion(1e-4), lambda: optax.lion(1e-4), 5),
    # g, p read; p written (the factored statistics are small): a lower bound
    "adafactor": (lambda: gx.adafactor(1e-3), lambda: optax.adafactor(1e-3), 3),
}


def make_step(tx: Any, apply: Callable) -> Callable:
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return step


def triad_step(a, b, c):
    return b + jnp.float32(0.5) * c


class Path:
    """One way to run a step: its compiled executable, its arguments, its timings."""

    def __init__(self, name: str, fn: Callable, args: tuple, donate: tuple = (0, 1)):
        self.name, self.times, self.faults = name, [], []
        # keep_unused: the triad's donated output buffer is an argument it does not read
        jitted = jax.jit(fn, donate_argnums=donate, keep_unused=True)
        start = time.perf_counter()
        traced = jitted.trace(*args)
        self.trace = time.perf_counter() - start
        start = time.perf_counter()
        lowered = traced.lower()
        self.lower = time.perf_counter() - start
        start = time.perf_counter()
        self.compiled = lowered.compile()
        self.compile = time.perf_counter() - start
        self.args, self.donate = list(args), donate

    @property
    def build(self) -> float:
        return self.trace + self.lower + self.compile

    def run(self, steps: int) -> None:
        """``steps`` steps, outputs fed back as the donated inputs; appends the time and the
        minor page faults per step."""
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for _ in range(steps):
            out = self.compiled(*self.args)
            out = out if isinstance(out, tuple) else (out,)
            for i, value in zip(self.donate, out):
                self.args[i] = value
        jax.block_until_ready(self.args)
        self.times.append((time.perf_counter() - start) / steps)
        self.faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def interleave(paths: list[Path], reps: int, steps: int) -> None:
    for path in paths:  # warm-up
        path.run(2)
        path.times.clear()
        path.faults.clear()
    for _ in range(reps):
        for path in paths:
            path.run(steps)


def triad(bytes_: int) -> Path:
    n = max(bytes_ // 12, 1)
    arrays = (jnp.zeros(n, jnp.float32), jnp.ones(n, jnp.float32), jnp.ones(n, jnp.float32))
    return Path("triad", triad_step, arrays, donate=(0,))


def copy_tree(tree: Any) -> Any:
    return jax.tree.map(jnp.copy, tree)


def step_paths(tree: Any, name: str, *, anchor: bool) -> list[Path]:
    make_gx, make_optax, _ = OPTIMIZERS[name]
    grads = jax.tree.map(lambda p: p * 0.5 + 1e-3, tree)
    gtx, otx = make_gx(), make_optax()
    fp = gx.flat_params(tree)
    flat_grads = fp.layout.flatten(grads)
    paths = [
        Path("optax", make_step(otx, optax.apply_updates),
             (copy_tree(tree), copy_tree(otx.init(tree)), grads)),  # optax may share buffers
        Path("gradxform", make_step(gtx, gx.apply_updates),
             (copy_tree(tree), gtx.init(tree), grads)),
        Path("gradxform flat", make_step(gtx, gx.apply_updates),
             (copy_tree(fp), gtx.init(fp), flat_grads)),
    ]
    if anchor:
        one = one_leaf(size_of(tree))
        paths.append(Path("gradxform 1 leaf", make_step(gtx, gx.apply_updates),
                          (one, gtx.init(one), jax.tree.map(lambda p: p * 0.5 + 1e-3, one))))
    return paths


def fmt_row(cells: list, widths: list[int]) -> str:
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths)))


def section_steps(args) -> None:
    for tree_name, make_tree in trees(args.quick).items():
        if args.trees and tree_name.split()[0] not in args.trees:
            continue
        tree = make_tree()
        n, leaves = size_of(tree), len(jax.tree.leaves(tree))
        print(f"\n### {tree_name}: {leaves} leaves, {n / 1e6:.2f}M float32 params\n", flush=True)
        widths = [13, 17, 9, 7, 8, 8, 7, 8, 9, 9, 9]
        print(fmt_row(["optimizer", "path", "step ms", "GB/s", "% triad", "trace s", "lower s",
                       "compile", "build s", "step/optax", "build/optax"], widths))
        for name in args.optimizers:
            passes = OPTIMIZERS[name][2]
            bytes_ = passes * 4 * n
            paths = step_paths(tree, name, anchor=leaves > 1)
            anchor = triad(bytes_)
            interleave(paths + [anchor], args.reps, args.steps)
            ref = paths[0]
            for path in paths:
                gbs = bytes_ / path.median / 1e9
                print(fmt_row([name, path.name, f"{1e3 * path.median:.2f}", f"{gbs:.1f}",
                               f"{100 * anchor.median / path.median:.0f}",
                               f"{path.trace:.2f}", f"{path.lower:.2f}",
                               f"{path.compile:.2f}", f"{path.build:.2f}",
                               f"{path.median / ref.median:.2f}",
                               f"{path.build / ref.build:.3f}"], widths))
            print(fmt_row([name, f"triad ({passes} passes)", f"{1e3 * anchor.median:.2f}",
                           f"{bytes_ / anchor.median / 1e9:.1f}", "100", "", "", "", "", "",
                           ""], widths))
            flat, one = paths[2], paths[3] if len(paths) > 3 else None
            if one is not None:
                print(f"{'':13}  flat / 1 leaf: step {flat.median / one.median:.2f}, "
                      f"build {flat.build / one.build:.2f}", flush=True)
            del paths, anchor


# --------------------------------------------------------------------------------------------
# End-to-end: a 16-block unrolled model, forward + backward + update.


def model_params(blocks: int, d: int, vocab: int) -> Any:
    rng = np.random.default_rng(3)

    def a(*shape, scale=None):
        scale = (1.0 / np.sqrt(shape[0])) if scale is None else scale
        return jnp.asarray(rng.normal(size=shape) * scale, jnp.float32)

    return {"embed": a(vocab, d, scale=0.02), "head": a(d, vocab),
            "ln_f": {"scale": jnp.ones(d), "bias": jnp.zeros(d)},
            "blocks": [{**{n: {"w": a(d, d), "b": jnp.zeros(d)} for n in "qkvo"},
                        "mlp": {"w1": a(d, 4 * d), "b1": jnp.zeros(4 * d),
                                "w2": a(4 * d, d), "b2": jnp.zeros(d)},
                        "ln1": {"scale": jnp.ones(d), "bias": jnp.zeros(d)},
                        "ln2": {"scale": jnp.ones(d), "bias": jnp.zeros(d)}}
                       for _ in range(blocks)]}


def layer_norm(x, p):
    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, -1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["bias"]


def model_loss(params, tokens):
    x = params["embed"][tokens[:, :-1]]
    seq = x.shape[1]
    causal = jnp.tril(jnp.ones((seq, seq), bool))
    for block in params["blocks"]:  # unrolled: one set of leaves per block
        h = layer_norm(x, block["ln1"])
        q, k, v = (h @ block[n]["w"] + block[n]["b"] for n in "qkv")
        att = jnp.where(causal, q @ jnp.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]), -1e9)
        x = x + (jax.nn.softmax(att) @ v) @ block["o"]["w"] + block["o"]["b"]
        h = layer_norm(x, block["ln2"])
        m = block["mlp"]
        x = x + jax.nn.gelu(h @ m["w1"] + m["b1"]) @ m["w2"] + m["b2"]
    logits = layer_norm(x, params["ln_f"]) @ params["head"]
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, tokens[:, 1:, None], -1))


def section_model(args) -> None:
    d, batch, seq = (32, 2, 8) if args.quick else (256, 2, 32)
    blocks, vocab = (4 if args.quick else 16), 512
    params = model_params(blocks, d, vocab)
    tokens = jnp.asarray(np.random.default_rng(4).integers(0, vocab, size=(batch, seq + 1)))
    n, leaves = size_of(params), len(jax.tree.leaves(params))
    print(f"\n### End-to-end training step: {blocks} unrolled blocks, d={d}, {leaves} leaves, "
          f"{n / 1e6:.2f}M params, batch {batch} x {seq} tokens; clip + adamw\n", flush=True)
    gtx = OPTIMIZERS["clip+adamw"][0]()
    otx = OPTIMIZERS["clip+adamw"][1]()

    def tree_step(tx, apply):
        def step(params, state, tokens):
            grads = jax.grad(model_loss)(params, tokens)
            updates, state = tx.update(grads, state, params)
            return apply(params, updates), state
        return step

    def flat_step(params, state, tokens):
        grads = jax.grad(lambda fp: model_loss(fp.unflatten(), tokens))(params)
        updates, state = gtx.update(grads, state, params)
        return gx.apply_updates(params, updates), state

    fp = gx.flat_params(params)
    paths = [Path("optax", tree_step(otx, optax.apply_updates),
                  (copy_tree(params), copy_tree(otx.init(params)), tokens)),
             Path("gradxform", tree_step(gtx, gx.apply_updates),
                  (copy_tree(params), gtx.init(params), tokens)),
             Path("gradxform flat", flat_step, (copy_tree(fp), gtx.init(fp), tokens))]
    interleave(paths, args.reps, args.steps)
    widths = [15, 9, 8, 8, 8, 8, 10, 11, 12]
    print(fmt_row(["path", "step ms", "trace s", "lower s", "compile", "build s", "step/optax",
                   "build/optax", "faults/step"], widths))
    for path in paths:
        print(fmt_row([path.name, f"{1e3 * path.median:.2f}", f"{path.trace:.2f}",
                       f"{path.lower:.2f}", f"{path.compile:.2f}", f"{path.build:.2f}",
                       f"{path.median / paths[0].median:.2f}",
                       f"{path.build / paths[0].build:.3f}",
                       f"{statistics.median(path.faults):.0f}"], widths))
    flat = gx.flat_params(params)
    loss_tree = float(model_loss(params, tokens))
    loss_flat = float(jax.jit(lambda fp: model_loss(fp.unflatten(), tokens))(flat))
    print(f"(same loss through the flat params: {loss_tree:.6f} vs {loss_flat:.6f})", flush=True)


def section_assembly(args) -> None:
    """The update alone on the model's tree, with the flat gradient given or assembled from the
    per-leaf gradients in the step (the concatenate ``jax.grad`` of ``unflatten`` makes)."""
    d, blocks = (32, 4) if args.quick else (256, 16)
    params = model_params(blocks, d, 512)
    grads = jax.tree.map(lambda p: p * 0.5 + 1e-3, params)
    n, leaves = size_of(params), len(jax.tree.leaves(params))
    print(f"\n### The update alone on the model's tree ({leaves} leaves, {n / 1e6:.2f}M params): "
          "flat gradient given, or assembled in the step; clip + adamw\n", flush=True)
    gtx, otx = OPTIMIZERS["clip+adamw"][0](), OPTIMIZERS["clip+adamw"][1]()
    flat_step = make_step(gtx, gx.apply_updates)

    def assembled(params, state, grads):
        return flat_step(params, state, params.layout.flatten(grads))

    fp = gx.flat_params(params)
    paths = [Path("optax", make_step(otx, optax.apply_updates),
                  (copy_tree(params), copy_tree(otx.init(params)), grads)),
             Path("gradxform", make_step(gtx, gx.apply_updates),
                  (copy_tree(params), gtx.init(params), grads)),
             Path("flat, given", flat_step,
                  (copy_tree(fp), gtx.init(fp), fp.layout.flatten(grads))),
             Path("flat, assembled", assembled, (copy_tree(fp), gtx.init(fp), grads))]
    interleave(paths, args.reps, args.steps)
    widths = [16, 9, 8, 10, 12]
    print(fmt_row(["path", "step ms", "build s", "step/optax", "faults/step"], widths))
    for path in paths:
        print(fmt_row([path.name, f"{1e3 * path.median:.2f}", f"{path.build:.2f}",
                       f"{path.median / paths[0].median:.2f}",
                       f"{statistics.median(path.faults):.0f}"], widths))
    print(f"assembling the flat gradient costs "
          f"{1e3 * (paths[3].median - paths[2].median):.2f} ms a step", flush=True)


# --------------------------------------------------------------------------------------------
# A population: 32 small MLP trainings at once (vmap) against one after another.


def section_population(args) -> None:
    members, steps = (8, 20) if args.quick else (32, 200)
    sizes = (32, 64, 64, 10)
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(256, sizes[0])), jnp.float32)
    y = jnp.asarray(rng.integers(0, sizes[-1], size=256))

    def init(key):
        keys = jax.random.split(key, len(sizes) - 1)
        return [{"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)}
                for k, a, b in zip(keys, sizes, sizes[1:])]

    def loss(params):
        h = x
        for layer in params[:-1]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        logp = jax.nn.log_softmax(h @ params[-1]["w"] + params[-1]["b"])
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))

    def train(opt, params, flat):
        def body(carry, _):
            params, state = carry
            f = (lambda fp: loss(fp.unflatten())) if flat else loss
            value, grads = jax.value_and_grad(f)(params)
            updates, state = opt.update(grads, state, params)
            return (gx.apply_updates(params, updates), state), value
        (_, _), losses = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
        return losses[-1]

    lrs = np.geomspace(1e-4, 1e-1, members)
    opts = [gx.adam(float(lr)) for lr in lrs]
    inits = [init(jax.random.key(i)) for i in range(members)]
    print(f"\n### Population: {members} MLPs {sizes}, {steps} adam steps each on 256 examples "
          f"(learning rates {lrs[0]:.0e} to {lrs[-1]:.0e})\n", flush=True)
    widths = [28, 10, 10, 13]
    print(fmt_row(["run", "build s", "run s", "per member ms"], widths))
    results = {}
    for flat in (False, True):
        layout = "flat" if flat else "per leaf"
        params = [gx.flat_params(p) for p in inits] if flat else inits
        one = jax.jit(lambda o, p, flat=flat: train(o, p, flat))
        start = time.perf_counter()
        compiled_one = one.lower(opts[0], params[0]).compile()
        build_one = time.perf_counter() - start
        batched = jax.jit(jax.vmap(lambda o, p, flat=flat: train(o, p, flat)))
        stacked_opts, stacked_params = gx.stack(opts), jax.tree.map(lambda *a: jnp.stack(a),
                                                                   *params)
        start = time.perf_counter()
        compiled_all = batched.lower(stacked_opts, stacked_params).compile()
        build_all = time.perf_counter() - start
        seq_times, vmap_times = [], []
        for _ in range(max(args.reps // 3, 2)):
            start = time.perf_counter()
            finals = [compiled_one(o, p) for o, p in zip(opts, params)]
            jax.block_until_ready(finals)
            seq_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            batch_finals = jax.block_until_ready(compiled_all(stacked_opts, stacked_params))
            vmap_times.append(time.perf_counter() - start)
        # The same trainings both ways; a member at a learning rate where training is chaotic
        # may end elsewhere (the batched matmuls sum in another order): reported, not hidden.
        a, b = np.asarray(finals), np.asarray(batch_finals)
        differ = np.flatnonzero(~np.isclose(a, b, rtol=1e-3, atol=1e-5))
        if differ.size:
            print(f"({layout}: final losses differ by more than 1e-3 for members "
                  f"{differ.tolist()}: {a[differ].round(4).tolist()} one after another, "
                  f"{b[differ].round(4).tolist()} vmapped)")
        seq, vm = statistics.median(seq_times), statistics.median(vmap_times)
        results[layout] = (seq, vm)
        print(fmt_row([f"{layout}: one after another", f"{build_one:.2f}", f"{seq:.3f}",
                       f"{1e3 * seq / members:.2f}"], widths))
        print(fmt_row([f"{layout}: vmap of {members}", f"{build_all:.2f}", f"{vm:.3f}",
                       f"{1e3 * vm / members:.2f}"], widths))
    for layout, (seq, vm) in results.items():
        print(f"{layout}: vmap is {seq / vm:.1f}x faster than one after another")


# --------------------------------------------------------------------------------------------
# Memory: bytes of optimizer state.


def section_memory(args) -> None:
    tree = transformer_tree(blocks=8, d=32, vocab=512, ctx=16) if args.quick else \
        transformer_tree()
    n, leaves = size_of(tree), len(jax.tree.leaves(tree))
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
    flat = gx.flat_params(abstract)
    print(f"\n### Optimizer state for the transformer-like tree ({leaves} leaves, "
          f"{n / 1e6:.2f}M float32 params, {4 * n / 1e6:.1f} MB)\n", flush=True)
    cases = {
        "adam": gx.adam(1e-3),
        "adam, bfloat16 mu": gx.adam(1e-3, mu_dtype=jnp.bfloat16),
        "adam, bfloat16 mu and nu": gx.adam(1e-3, b2=0.99, mu_dtype=jnp.bfloat16,
                                            nu_dtype=jnp.bfloat16),  # 0.999 is 1 in bf16
        "adafactor": gx.adafactor(1e-3),
        "adafactor, factor >= 32": gx.adafactor(1e-3, min_dim_size_to_factor=32),
        "sm3": gx.sm3(1e-3),
        "lion": gx.lion(1e-4),
        "sgd+momentum": gx.sgd(1e-2, momentum=0.9),
        "adam on FlatParams": gx.adam(1e-3),
        "lion on FlatParams": gx.lion(1e-4),
    }
    widths = [26, 10, 12, 8]
    print(fmt_row(["optimizer", "state MB", "bytes/param", "arrays"], widths))
    for name, tx in cases.items():
        params = flat if "FlatParams" in name else abstract
        state = jax.eval_shape(tx.init, params)
        arrays = jax.tree.leaves(state)
        total = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in arrays)
        print(fmt_row([name, f"{total / 1e6:.1f}", f"{total / n:.2f}", len(arrays)], widths))


# --------------------------------------------------------------------------------------------
# Where the per-leaf path spends its trace time.


def section_profile(args) -> None:
    tree = transformer_tree(blocks=8, d=32, vocab=512, ctx=16) if args.quick else \
        transformer_tree()
    grads = jax.tree.map(lambda p: p * 0.5, tree)
    gtx, otx = OPTIMIZERS["clip+adamw"][0](), OPTIMIZERS["clip+adamw"][1]()
    print(f"\n### Per-leaf clip + adamw on {len(jax.tree.leaves(tree))} leaves: trace, lower "
          "and compile of the step, seconds (median of 3 traces and lowerings, one compile)\n")
    widths = [10, 8, 8, 8]
    print(fmt_row(["library", "trace", "lower", "compile"], widths))
    for name, tx, apply in (("optax", otx, optax.apply_updates),
                            ("gradxform", gtx, gx.apply_updates)):
        state = tx.init(tree)
        traces, lowers = [], []
        for _ in range(3):
            jitted = jax.jit(make_step(tx, apply))
            start = time.perf_counter()
            traced = jitted.trace(tree, state, grads)
            traces.append(time.perf_counter() - start)
            start = time.perf_counter()
            lowered = traced.lower()
            lowers.append(time.perf_counter() - start)
        start = time.perf_counter()
        lowered.compile()
        compile_s = time.perf_counter() - start
        print(fmt_row([name, f"{statistics.median(traces):.2f}",
                       f"{statistics.median(lowers):.2f}", f"{compile_s:.2f}"], widths),
              flush=True)
    state = gtx.init(tree)
    profiler = cProfile.Profile()
    profiler.enable()
    jax.jit(make_step(gtx, gx.apply_updates)).trace(tree, state, grads)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    stats.print_stats("gradxform", 12)
    print("\ngradxform's own frames by time spent in them (cProfile of one trace):")
    print("\n".join(line for line in out.getvalue().splitlines()[-16:] if line.strip()))


# --------------------------------------------------------------------------------------------


# glibc's malloc returns a block above its mmap threshold (at most 32 MB) to the system when it
# is freed, so a temporary that large is mapped again, page by page, in every step; blocks from
# threads' arenas are capped at 64 MB. These settings take every block from the main heap and
# keep freed memory for reuse, as tcmalloc and jemalloc do.
KEEP_FREED_MEMORY = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0",
                     "MALLOC_TRIM_THRESHOLD_": str(2 ** 40)}

SECTIONS = {"steps": section_steps, "model": section_model, "assembly": section_assembly,
            "population": section_population, "memory": section_memory,
            "profile": section_profile}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (checks that it runs)")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZERS),
                        default=list(OPTIMIZERS))
    parser.add_argument("--trees", nargs="+", choices=["1", "100", "1988", "200"],
                        default=None, help="the step section's trees, by leaf count")
    parser.add_argument("--reps", type=int, default=None, help="interleaved rounds (median)")
    parser.add_argument("--steps", type=int, default=None, help="steps per round")
    parser.add_argument("--malloc", choices=["default", "keep"], default="default",
                        help="keep: run again with glibc's malloc set to keep freed memory "
                             f"({' '.join(f'{k}={v}' for k, v in KEEP_FREED_MEMORY.items())})")
    args = parser.parse_args()
    if args.malloc == "keep" and any(os.environ.get(k) != v
                                     for k, v in KEEP_FREED_MEMORY.items()):
        # glibc reads these when the process starts: run the script again with them set
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, **KEEP_FREED_MEMORY})
    args.reps = args.reps or (3 if args.quick else 9)
    args.steps = args.steps or (3 if args.quick else 5)
    load = os.getloadavg()
    print(f"jax {jax.__version__}, optax {optax.__version__}, gradxform {gx.__version__}; "
          f"{jax.devices()[0].platform} x {jax.device_count()}, {os.cpu_count()} cores; "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the start")
    settings = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"}
    print("allocator: " + (" ".join(f"{k}={v}" for k, v in sorted(settings.items()))
                           if settings else "the C library's malloc, default settings"))
    for name in args.only:
        SECTIONS[name](args)
    load = os.getloadavg()
    print(f"\nload average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")


if __name__ == "__main__":
    main()
