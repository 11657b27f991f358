"""The migration guide's name index covers every public name of optax, optax.contrib and
optax.tree_utils (``docs/hooks/optax_names.py``, rendered into ``docs/migrating_from_optax.md``).

Fails when optax gains a name the index does not list. Names the index says gradxform keeps
under optax's name must exist once they are added (those still being added are checked only
when present); names it maps to another gradxform name must resolve.
"""

import importlib.util
from pathlib import Path

import pytest

import gradxform as gx

pytest.importorskip("optax")

HOOKS = Path(__file__).resolve().parent.parent / "docs" / "hooks"
_spec = importlib.util.spec_from_file_location("optax_names", HOOKS / "optax_names.py")
names = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(names)

NAMESPACES = ("optax", "optax.contrib", "optax.tree_utils")


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_optax_name_is_in_the_index(namespace):
    unlisted = [n for n in names.optax_public(namespace)
                if names.classify(namespace, n)[0] == "unlisted"]
    assert not unlisted, (f"{namespace} has names the migration guide does not list: "
                          f"{unlisted}; add them to docs/hooks/optax_names.py")


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_the_index_points_to_names_that_exist(namespace):
    home = names.gradxform_home(namespace)
    coming = names.COMING[namespace]
    for name in names.optax_public(namespace):
        kind, _, target = names.classify(namespace, name)
        if target is None or (target in coming and not hasattr(home, target)):
            continue  # prose, or a name still being added
        assert hasattr(home, target), (namespace, name, target)
    stale = sorted(set(names.OTHER[namespace]) - set(names.optax_public(namespace)))
    assert not stale, f"the index lists names {namespace} no longer has: {stale}"


def test_the_guide_includes_the_index():
    guide = (HOOKS.parent / "migrating_from_optax.md").read_text()
    assert "[[optax-name-index]]" in guide
    table = names.index_markdown()
    for namespace in NAMESPACES:
        for name in names.optax_public(namespace):
            assert f"| `{namespace}.{name}` |" in table
    assert "[`gx.inject_hyperparams`][gradxform.inject_hyperparams]" in table
    assert gx.tree_utils.tree_get  # the tree_utils rows point into gx.tree_utils


def test_a_new_optax_name_is_caught(monkeypatch):
    import optax

    monkeypatch.setattr(optax, "brand_new_optimizer", lambda: None, raising=False)
    assert "brand_new_optimizer" in names.optax_public("optax")
    assert names.classify("optax", "brand_new_optimizer")[0] == "unlisted"
