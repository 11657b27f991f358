"""A state fits only the transformation whose ``init`` made it.

``update`` rejects a state made by another optimizer, or by the same optimizer with other
flags, dtypes or links, naming what differs (``OptState.made_by``, checked at trace time), and
a checkpoint restored into the state of another optimizer fails in flax and in orbax. The
numbers (learning rates, schedules) are not part of the check: a state can be continued with
other hyperparameters.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

import gradxform as gx
from gradxform._src.base import walk
from helpers import nested_params
from registry import all_entries, update_arguments

ENTRIES = all_entries()
PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
GRADS = jax.tree.map(lambda p: jnp.full_like(p, 0.5), PARAMS)


def _extra(entry):
    return update_arguments(entry, value=1.0, grads=GRADS)


def test_every_optimizer_rejects_every_other_optimizers_state():
    made = [(e, e.make(target="quadratic")) for e in ENTRIES]
    states = {e.name: tx.init(PARAMS) for e, tx in made}
    keys = {e.name: gx.fingerprint(tx) for e, tx in made}
    # Entries that differ only in numbers (a schedule for a number, dampening set) share one.
    shared = {k: sorted(n for n in keys if keys[n] == k) for k in keys.values()}
    assert sorted(v for v in shared.values() if len(v) > 1) == [
        ["ademamix", "ademamix_warmup"], ["sgd_dampened", "sgd_momentum"]]
    rejected = accepted = 0
    for e_user, tx in made:
        for e_maker, _ in made:
            if e_maker is e_user:
                continue
            if keys[e_maker.name] == keys[e_user.name]:
                tx.update(GRADS, states[e_maker.name], PARAMS, **_extra(e_user))
                accepted += 1
                continue
            with pytest.raises(gx.ForeignStateError) as info:
                tx.update(GRADS, states[e_maker.name], PARAMS, **_extra(e_user))
            maker = keys[e_maker.name].rsplit("-", 1)[0]
            text = str(info.value)
            assert text.startswith(f"{tx.name}.update: the state was made by the init of "
                                   f"another transformation, '{maker}', which differs from "
                                   f"{tx.name} at "), text
            assert " there, " in text and " here. " in text, text
            rejected += 1
    assert (rejected, accepted) == (len(made) * (len(made) - 1) - 4, 4)


@pytest.mark.parametrize("make_a, make_b, where, there, here", [
    (lambda: gx.adam(1e-3), lambda: gx.adamw(1e-3), "transforms",
     "2 links (scale_by_adam, scale_by_learning_rate)",
     "3 links (scale_by_adam, add_decayed_weights, scale_by_learning_rate)"),
    (lambda: gx.adam(1e-3), lambda: gx.adam(1e-3, nesterov=True), "transforms[0].nesterov",
     "False", "True"),
    (lambda: gx.adam(1e-3), lambda: gx.adam(1e-3, mu_dtype=jnp.bfloat16),
     "transforms[0].mu_dtype", "None", "dtype bfloat16"),
    (lambda: gx.adam(1e-3), lambda: gx.sgd(1e-3, momentum=0.9), "transforms[0]",
     "scale_by_adam", "trace"),
    (lambda: gx.adam(1e-3), lambda: gx.chain(gx.clip_by_global_norm(1.0), gx.adam(1e-3)),
     "transforms[0]", "scale_by_adam", "clip_by_global_norm"),
    (lambda: gx.sgd(0.1), lambda: gx.chain(gx.sgd(0.1), gx.scale(1.0)), "transforms",
     "1 link (scale_by_learning_rate)", "2 links (chain, scale)"),
    (lambda: gx.skip_non_finite(gx.adam(1e-3)), lambda: gx.skip_non_finite(gx.adamw(1e-3)),
     "inner.transforms", "2 links", "3 links"),
    (lambda: gx.adamw(1e-3, mask={"w": True, "b": False}),
     lambda: gx.adamw(1e-3, mask={"w": True, "b": True}), "transforms[1].mask", "a tree",
     "a tree"),
    (lambda: gx.partition({"a": gx.adam(1e-3), "b": gx.sgd(0.1)}, {"w": "a", "b": "b"}),
     lambda: gx.partition({"a": gx.adam(1e-3), "b": gx.sgd(0.1)}, {"w": "b", "b": "a"}),
     "param_labels", "a tree", "a tree"),
])
def test_the_message_names_what_differs(make_a, make_b, where, there, here):
    a, b = make_a(), make_b()
    with pytest.raises(gx.ForeignStateError) as info:
        b.update(GRADS, a.init(PARAMS), PARAMS)
    text = str(info.value)
    assert f"at {where}: {there}" in text and f", {here}" in text, text


def test_the_numbers_are_not_part_of_the_check():
    """Other learning rates, a schedule instead of a number, arrays, traced values: the same
    optimizer, so the state fits (a run can continue with new hyperparameters)."""
    state = gx.adam(1e-3).init(PARAMS)
    for tx in (gx.adam(3e-4, b1=0.8), gx.adam(gx.cosine_decay_schedule(1e-3, 100)),
               gx.adam(jnp.float32(1e-2)), gx.stack([gx.adam(1e-3), gx.adam(1e-2)])):
        if jnp.ndim(jax.tree.leaves(tx)[0]):
            jax.vmap(lambda t: t.update(GRADS, state, PARAMS))(tx)
        else:
            tx.update(GRADS, state, PARAMS)
    jax.jit(lambda lr: gx.adam(lr).update(GRADS, state, PARAMS))(1e-3)
    assert gx.fingerprint(gx.adam(1e-3)) == gx.fingerprint(gx.adam(0.5, eps=1e-3))
    # whether an optional hyperparameter is given at all is structure
    assert (gx.fingerprint(gx.skip_non_finite(gx.sgd(0.1)))
            != gx.fingerprint(gx.skip_non_finite(gx.sgd(0.1), max_consecutive_errors=3)))


def test_the_check_happens_when_tracing_and_costs_nothing_in_the_program():
    tx = gx.adam(1e-3)
    state = tx.init(PARAMS)
    assert jax.tree.leaves(state.made_by) == []  # no array: nothing to carry or donate
    lowered = jax.jit(tx.update).lower(GRADS, state, PARAMS).as_text()
    assert "made_by" not in lowered
    with pytest.raises(gx.ForeignStateError):
        jax.jit(gx.adamw(1e-3).update)(GRADS, state, PARAMS)


def test_chain_refuses_a_state_with_another_number_of_links():
    """``chain`` zips links and states: a state with fewer entries must not drop links."""
    tx = gx.chain(gx.clip_by_global_norm(1.0), gx.adam(1e-3))
    state = gx.adam(1e-3).init(PARAMS)
    step = gx.Step(state.count, {})
    with pytest.raises(TypeError, match=r"chain: the state must hold one state per link \(2\), "
                                        r"got a tuple of 1"):
        tx.apply(GRADS, state.inner[:1], PARAMS, step)
    named = gx.named_chain(("clip", gx.clip(1.0)), ("sgd", gx.sgd(0.1)))
    with pytest.raises(TypeError, match=r"the state must be a dict with the keys \('clip', "
                                        r"'sgd'\), got a dict with the keys \('clip',\)"):
        named.apply(GRADS, {"clip": ()}, PARAMS, step)



def test_chain_walked_without_a_state_still_lists_every_link():
    """The check above must not refuse ``walk``'s placeholder: ``set_hyperparams`` (and nnx's
    ``hyperparams_as_arrays`` workflow) walk a transformation that has no state yet."""
    tx = gx.named_chain(("clip", gx.clip(1.0)), ("opt", gx.adam(1e-3, b1=0.8)))
    labels = [path for path, _, _, _ in walk(tx)]
    assert labels[:3] == [(), ("clip",), ("opt",)] and len(labels) == 5, labels
    changed = gx.set_hyperparams(tx, learning_rate=3e-4, b1=0.7)
    assert float(changed.transforms[1].transforms[1].learning_rate) == pytest.approx(3e-4)
    assert float(changed.transforms[1].transforms[0].b1) == pytest.approx(0.7)

def test_a_foreign_init_that_reuses_an_array_is_copied():
    class Aliasing:
        def init(self, params):
            zeros = jax.tree.map(jnp.zeros_like, params)
            return (zeros, zeros)

        def update(self, updates, state, params=None):
            return updates, state

    state = gx.chain(Aliasing(), gx.sgd(0.1)).init(PARAMS)
    ids = [x.unsafe_buffer_pointer() for x in jax.tree.leaves(state)]
    assert len(ids) == len(set(ids))


# --------------------------------------------------------------------------------------------
# Checkpoints restored into another optimizer's state.

# Their state leaves are exactly adam's (paths, shapes, dtypes); the first three are also
# chains of two links, like adam.
SAME_LAYOUT = (gx.adabelief, gx.yogi, gx.nadam, gx.lamb)


def test_restored_checkpoints_keep_their_maker():
    """adam's state holds the same arrays (paths, shapes, dtypes) as adabelief's, yogi's,
    lamb's and nadam's: without ``made_by`` a checkpoint of one restores silently into another.
    """
    leaves = lambda s: [(jax.tree_util.keystr(k), x.shape) for k, x in  # noqa: E731
                        jax.tree_util.tree_flatten_with_path(s)[0]]
    adam_state = gx.adam(1e-3).init(PARAMS)
    for factory in SAME_LAYOUT:
        assert leaves(factory(1e-3).init(PARAMS)) == leaves(adam_state)


def test_flax_restore_into_another_optimizer_fails():
    saved = serialization.to_bytes(gx.adam(1e-3).init(PARAMS))
    back = serialization.from_bytes(gx.adam(3e-4).init(PARAMS), saved)  # other numbers: fine
    assert gx.fingerprint(gx.adam(3e-4)) in back.made_by
    for factory in SAME_LAYOUT[:3]:
        target = factory(1e-3).init(PARAMS)
        with pytest.raises(ValueError, match=rf"target dict contains keys \{{'{factory.__name__}-"
                                             r"[0-9a-f]+'\} which are not present in state dict "
                                             r"at path ./made_by"):
            serialization.from_bytes(target, saved)
    for factory in (gx.lamb, gx.adamw, gx.sgd):  # more or fewer links: flax fails earlier
        with pytest.raises(ValueError, match="The size of the list and the state dict do not "
                                             "match, got"):
            serialization.from_bytes(factory(1e-3).init(PARAMS), saved)


def test_orbax_restore_into_another_optimizer_fails(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "adam", {"opt_state": gx.adam(1e-3).init(PARAMS)})
    checkpointer.wait_until_finished()

    def restore(tx):
        target = {"opt_state": tx.init(PARAMS)}
        return checkpointer.restore(tmp_path / "adam",
                                    jax.tree.map(ocp.utils.to_shape_dtype_struct, target))

    back = restore(gx.adam(3e-4))
    np.testing.assert_array_equal(back["opt_state"].inner[0].mu["w"], np.zeros((2, 3)))
    for factory in (*SAME_LAYOUT, gx.adamw):
        with pytest.raises(ValueError, match=rf"(?s)tree structures do not match.*"
                                             rf"opt_state\.made_by\.{factory.__name__}-"):
            restore(factory(1e-3))
    checkpointer.close()


def masked_adamw():
    return gx.adamw(1e-3, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))


def test_fingerprints_are_the_same_in_another_process():
    """A checkpoint written by one process is restored by another: the key must not depend on
    object addresses, hash seeds or import order."""
    code = ("import sys; sys.path.insert(0, 'tests')\n"
            "import gradxform as gx\n"
            "from registry import all_entries\n"
            "for e in all_entries():\n"
            "    print(e.name, gx.fingerprint(e.make(target='quadratic')))\n"
            "import test_foreign_states as here\n"
            "print('masked', gx.fingerprint(here.masked_adamw()))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={"PYTHONHASHSEED": "123", "PATH": "",
                                         "JAX_PLATFORMS": "cpu"}).stdout
    theirs = dict(line.split() for line in out.strip().splitlines())
    mine = {e.name: gx.fingerprint(e.make(target="quadratic")) for e in ENTRIES}
    mine["masked"] = gx.fingerprint(masked_adamw())
    assert theirs == mine


def test_nested_params_and_wrappers_round_trip():
    params = nested_params()
    for tx in (gx.ema_params(gx.adam(1e-3)), gx.accumulate(gx.lion(1e-3), every_k=2),
               gx.selective_transform(gx.adam(1e-3), freeze_mask={"dense": True, "blocks": False,
                                                                  "scale": False})):
        state = tx.init(params)
        grads = jax.tree.map(jnp.ones_like, params)
        _, new = tx.update(grads, state, params)
        assert new.made_by == state.made_by and type(new) is type(state)
        back = serialization.from_bytes(tx.init(params), serialization.to_bytes(new))
        assert back.made_by == state.made_by
