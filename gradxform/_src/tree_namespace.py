"""``gx.tree``: the functions of :mod:`gx.tree_utils <gradxform._src.tree_utils>` without the
``tree_`` prefix, as optax's ``optax.tree`` namespace (``gx.tree.get(state, "mu")``,
``gx.tree.norm(grads)``, ``gx.tree.map_params(opt, f, state)``)."""

from gradxform._src import tree_utils as _tu

NamedTupleKey = _tu.NamedTupleKey
get = _tu.tree_get
set = _tu.tree_set  # noqa: A001 - optax's name
get_all_with_path = _tu.tree_get_all_with_path
map_params = _tu.tree_map_params
add = _tu.tree_add
sub = _tu.tree_sub
mul = _tu.tree_mul
div = _tu.tree_div
scale = _tu.tree_scale
add_scale = _tu.tree_add_scale
vdot = _tu.tree_vdot
sum = _tu.tree_sum  # noqa: A001
max = _tu.tree_max  # noqa: A001
min = _tu.tree_min  # noqa: A001
size = _tu.tree_size
conj = _tu.tree_conj
real = _tu.tree_real
norm = _tu.tree_norm
batch_shape = _tu.tree_batch_shape
zeros_like = _tu.tree_zeros_like
ones_like = _tu.tree_ones_like
full_like = _tu.tree_full_like
clip = _tu.tree_clip
where = _tu.tree_where
allclose = _tu.tree_allclose
cast = _tu.tree_cast
cast_like = _tu.tree_cast_like
dtype = _tu.tree_dtype
random_like = _tu.tree_random_like
split_key_like = _tu.tree_split_key_like
unwrap_random_key_data = _tu.tree_unwrap_random_key_data
update_moment = _tu.tree_update_moment
update_moment_per_elem_norm = _tu.tree_update_moment_per_elem_norm
update_infinity_moment = _tu.tree_update_infinity_moment
bias_correction = _tu.tree_bias_correction

__all__ = [name[len("tree_"):] if name.startswith("tree_") else name for name in _tu.__all__]
