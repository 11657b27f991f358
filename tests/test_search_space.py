"""Search spaces: the unit-cube encoding, conditions, sampling, batches and argument errors.

Expected encodings are written from the definitions in the module docstring (``(x - lo) /
(hi - lo)``, the cell centre ``(x - lo + 0.5) / n`` of an Int, one-hot blocks), not read back
from the code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradxform import search

S = search


def same(a, b):
    """Configurations equal, floats to 1e-12 relative (the encoding goes through log)."""
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k], rel_tol=1e-12) if isinstance(a[k], float) else a[k] == b[k]
        for k in a)


def full_space():
    return S.Space({
        "learning_rate": S.Float(1e-5, 1.0, log=True),
        "b1": S.Float(0.5, 0.99),
        "warmup": S.Int(0, 500),
        "opt": S.Categorical(["adam", "lion"]),
    })


def conditional_space():
    return S.Space({
        "opt": S.Categorical(["sgd", "adam", "lion"]),
        "momentum": S.Float(0.0, 0.99, when={"opt": "sgd"}),
        "nesterov": S.Categorical([False, True], when={"opt": "sgd"}),
        "dampening": S.Float(0.0, 0.5, when={"nesterov": False}),   # a grandchild of opt
        "b2": S.Float(0.9, 0.999, when={"opt": ["adam", "lion"]}),
        "learning_rate": S.Float(1e-4, 1.0, log=True),
    })


# -- the encoding, from its definition ---------------------------------------------------------


def test_contract_example_dim_names_groups():
    space = full_space()
    assert space.dim == 5
    assert space.names == ("learning_rate", "b1", "warmup", "opt=adam", "opt=lion")
    assert [(g.name, g.kind, g.slice) for g in space.groups] == [
        ("learning_rate", "float", slice(0, 1)), ("b1", "float", slice(1, 2)),
        ("warmup", "int", slice(2, 3)), ("opt", "categorical", slice(3, 5))]
    name, kind, sl = space.groups[3]          # groups unpack as plain tuples
    assert (name, kind, sl) == ("opt", "categorical", slice(3, 5))


def test_encode_by_the_definitions():
    space = full_space()
    u = space.encode({"learning_rate": 1e-3, "b1": 0.9, "warmup": 100, "opt": "lion"})
    expected = [(math.log(1e-3) - math.log(1e-5)) / (math.log(1.0) - math.log(1e-5)),
                (0.9 - 0.5) / (0.99 - 0.5),
                (100 - 0 + 0.5) / 501,
                0.0, 1.0]
    assert u.dtype == np.float64 and u.shape == (5,)
    np.testing.assert_allclose(u, expected, rtol=1e-12)


@pytest.mark.parametrize("u,expected", [
    (0.0, 3), (1 / 6 - 1e-9, 3), (1 / 6, 4), (0.5, 6), (5 / 6 + 1e-9, 8), (1.0, 8)])
def test_int_decodes_by_cells(u, expected):
    space = S.Space({"k": S.Int(3, 8)})     # 6 values, cells of width 1/6
    assert space.decode([u]) == {"k": expected}


def test_int_cell_centres_round_trip():
    p = S.Int(-2, 7)
    space = S.Space({"k": p})
    for x in range(-2, 8):
        u = space.encode({"k": x})
        np.testing.assert_allclose(u, [(x + 2 + 0.5) / 10])
        assert space.decode(u) == {"k": x}


def test_log_int_round_trips_and_is_log_spaced():
    space = S.Space({"width": S.Int(1, 1024, log=True)})
    for x in (1, 2, 3, 17, 512, 1023, 1024):
        assert space.decode(space.encode({"width": x})) == {"width": x}
    draws = [c["width"] for c in space.sample(0, 4000)]
    # log-uniform over [0.5, 1024.5]: P(width <= 32) = log(32.5/0.5) / log(1024.5/0.5)
    p = math.log(32.5 / 0.5) / math.log(1024.5 / 0.5)
    assert abs(np.mean(np.asarray(draws) <= 32) - p) < 0.03


def test_categorical_decodes_by_argmax_first_on_ties():
    space = S.Space({"c": S.Categorical(["a", "b", "c"])})
    assert space.decode([0.1, 0.7, 0.2]) == {"c": "b"}
    assert space.decode([0.5, 0.5, 0.5]) == {"c": "a"}
    np.testing.assert_array_equal(space.encode({"c": "c"}), [0, 0, 1])


def test_decode_accepts_any_point_and_clips():
    space = conditional_space()
    rng = np.random.default_rng(0)
    for u in rng.uniform(-0.5, 1.5, size=(200, space.dim)):
        config = space.decode(u)
        assert space.check(config) == config
    assert space.decode(np.full(space.dim, np.nan)) == space.decode(np.full(space.dim, 0.5))
    lo = space.decode(np.full(space.dim, -3.0))
    assert lo["learning_rate"] == 1e-4


def test_round_trip_on_samples():
    space = conditional_space()
    for config in space.sample(np.random.default_rng(1), 300):
        assert same(space.decode(space.encode(config)), config)


def test_floats_endpoints_exact():
    space = S.Space({"lr": S.Float(1e-5, 1.0, log=True), "x": S.Float(-1.0, 2.0)})
    assert space.decode([0.0, 0.0]) == {"lr": 1e-5, "x": -1.0}
    assert space.decode([1.0, 1.0]) == {"lr": 1.0, "x": 2.0}


# -- sampling ----------------------------------------------------------------------------------


def test_sample_distributions():
    space = full_space()
    configs = space.sample(np.random.default_rng(2), 4000)
    lr = np.array([c["learning_rate"] for c in configs])
    assert abs(np.mean(lr < 10 ** -2.5) - 0.5) < 0.03          # log-uniform: median 10^-2.5
    b1 = np.array([c["b1"] for c in configs])
    assert abs(np.mean(b1 < 0.745) - 0.5) < 0.03                # uniform: median 0.745
    warm = np.array([c["warmup"] for c in configs])
    assert warm.min() >= 0 and warm.max() <= 500 and abs(warm.mean() - 250) < 10
    assert abs(np.mean([c["opt"] == "lion" for c in configs]) - 0.5) < 0.03
    assert space.sample(5, 3) == space.sample(np.random.default_rng(5), 3)


# -- conditions --------------------------------------------------------------------------------


def test_conditions_drop_inactive_and_encode_them_as_half():
    space = conditional_space()
    config = {"opt": "adam", "b2": 0.95, "learning_rate": 0.01}
    u = space.encode(config)
    sl = {g.name: g.slice for g in space.groups}
    np.testing.assert_array_equal(u[sl["momentum"]], [0.5])
    np.testing.assert_array_equal(u[sl["nesterov"]], [0.5, 0.5])
    np.testing.assert_array_equal(u[sl["dampening"]], [0.5])
    assert same(space.decode(u), config)
    # values for inactive parameters are ignored by check (and so by encode)
    assert space.check({**config, "momentum": 0.9}) == config


def test_nested_conditions():
    space = conditional_space()
    sgd = {"opt": "sgd", "momentum": 0.9, "nesterov": False, "dampening": 0.1,
           "learning_rate": 0.1}
    assert same(space.decode(space.encode(sgd)), sgd)
    nest = {"opt": "sgd", "momentum": 0.9, "nesterov": True, "learning_rate": 0.1}
    assert same(space.decode(space.encode(nest)), nest)
    seen = {tuple(sorted(c)) for c in space.sample(0, 200)}
    assert seen == {tuple(sorted(sgd)), tuple(sorted(nest)),
                    ("b2", "learning_rate", "opt")}


def test_condition_errors():
    with pytest.raises(ValueError, match="Space: a depends on 'zz', which is not a parameter"):
        S.Space({"a": S.Float(0, 1, when={"zz": 1})})
    with pytest.raises(ValueError, match="the conditions form a cycle: a -> b -> a"):
        S.Space({"a": S.Int(0, 1, when={"b": 1}), "b": S.Int(0, 1, when={"a": 1})})
    with pytest.raises(TypeError, match="Space: a depends on 'x', a Float"):
        S.Space({"x": S.Float(0, 1), "a": S.Float(0, 1, when={"x": 0.5})})
    with pytest.raises(ValueError, match="a is active when c = 'd', which c can never take"):
        S.Space({"c": S.Categorical(["x", "y"]), "a": S.Float(0, 1, when={"c": "d"})})
    with pytest.raises(ValueError, match="a cannot depend on itself"):
        S.Space({"a": S.Int(0, 1, when={"a": 1})})
    with pytest.raises(TypeError, match="Float: when must be a non-empty dict"):
        S.Float(0, 1, when="opt")


# -- checking configurations -------------------------------------------------------------------


def test_check_names_the_parameter():
    space = full_space()
    good = {"learning_rate": 1e-3, "b1": 0.9, "warmup": 100, "opt": "adam"}
    with pytest.raises(ValueError, match=r"Space: b1 = 1.5 is outside Float\(0.5, 0.99\)"):
        space.check({**good, "b1": 1.5})
    with pytest.raises(ValueError, match="Space: warmup must be a whole number"):
        space.check({**good, "warmup": 2.5})
    with pytest.raises(ValueError, match="Space: opt = 'sgd' is not one of the choices"):
        space.check({**good, "opt": "sgd"})
    with pytest.raises(ValueError, match="'b3' is not a parameter of the space"):
        space.check({**good, "b3": 0.9})
    with pytest.raises(ValueError, match="the configuration has no value for warmup"):
        space.check({k: v for k, v in good.items() if k != "warmup"})
    out = space.check({**good, "warmup": np.int64(7), "b1": np.float32(0.75)})
    assert type(out["warmup"]) is int and type(out["b1"]) is float


# -- argument errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("make,exc,message", [
    (lambda: S.Float(1.0, 0.5), ValueError, "Float: low must be < high, got low=1.0, high=0.5"),
    (lambda: S.Float(1.0, 1.0), ValueError, "Float: low must be < high, got low=1.0, high=1.0"),
    (lambda: S.Float(0.0, 1.0, log=True), ValueError,
     "Float: log=True needs low > 0 (the scale is log x), got low=0.0"),
    (lambda: S.Float(-1.0, 1.0, log=True), ValueError, "Float: log=True needs low > 0"),
    (lambda: S.Float(0.0, float("inf")), ValueError, "Float: high must be finite, got inf"),
    (lambda: S.Float("a", 1.0), TypeError, "Float: low must be a real number, got 'a'"),
    (lambda: S.Int(5, 2), ValueError, "Int: low must be <= high, got low=5, high=2"),
    (lambda: S.Int(0, 10, log=True), ValueError, "Int: log=True needs low >= 1, got low=0"),
    (lambda: S.Int(0.5, 2), TypeError, "Int: low must be a whole number, got 0.5"),
    (lambda: S.Categorical([]), ValueError, "Categorical: choices must not be empty"),
    (lambda: S.Categorical(["a", "a"]), ValueError, "Categorical: choices must be distinct"),
    (lambda: S.Categorical("ab"), TypeError, "Categorical: choices must be a list"),
    (lambda: S.Space({}), ValueError, "Space: needs at least one parameter"),
    (lambda: S.Space({"a": (0, 1)}), TypeError, "Space: a must be a Float, Int or Categorical"),
])
def test_argument_errors(make, exc, message):
    with pytest.raises(exc) as info:
        make()
    assert message in str(info.value)


def test_categorical_keeps_true_apart_from_one_and_takes_functions():
    c = S.Categorical([1, True, 0])
    assert c.index(True) == 1 and c.index(1) == 0
    from gradxform import adam, sgd
    space = S.Space({"opt": S.Categorical([adam, sgd])})
    assert space.decode([0.0, 1.0]) == {"opt": sgd}
    assert space.names == ("opt=adam", "opt=sgd")
    plain = space.to_plain({"opt": sgd})
    assert plain == {"opt": {"choice": 1}}
    assert space.from_plain(plain) == {"opt": sgd}


def test_parameters_are_immutable_values():
    p = S.Float(0.0, 1.0)
    with pytest.raises(AttributeError):
        p.low = 3.0
    assert S.Float(0.0, 1.0) == p and hash(S.Float(0.0, 1.0)) == hash(p)
    assert S.Float(0.0, 1.0, log=False) != S.Float(0.1, 1.0)
    assert full_space() == S.Space(dict(full_space().params))


# -- batches for vectorized objectives --------------------------------------------------------


def test_batch_dtypes_indices_and_padding():
    space = conditional_space()
    configs = [{"opt": "lion", "b2": 0.95, "learning_rate": 0.01},
               {"opt": "sgd", "momentum": 0.9, "nesterov": True, "learning_rate": 0.1}]
    b = space.batch(configs, size=4)
    assert set(b) == set(space.params)
    assert b["opt"].dtype == np.int32 and list(b["opt"][:2]) == [2, 0]
    assert b["nesterov"].dtype == np.int32 and b["nesterov"][1] == 1
    assert b["learning_rate"].dtype == np.float32 and b["learning_rate"].shape == (4,)
    np.testing.assert_allclose(b["learning_rate"][:2], [0.01, 0.1], rtol=1e-6)
    # inactive entries and padding rows hold the centre value
    np.testing.assert_allclose(b["momentum"][0], 0.495, rtol=1e-6)
    np.testing.assert_allclose(b["learning_rate"][2:], [1e-2, 1e-2], rtol=1e-5)
    with pytest.raises(ValueError, match="3 configurations do not fit in 2 rows"):
        space.batch(configs + configs[:1], size=2)
