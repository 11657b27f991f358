"""The documentation site builds, covers the public API exactly, renders math, works offline,
and its examples run.

The site is built once per session with ``mkdocs build --strict`` into a temporary directory
(strict: any warning, such as a broken link or an unparsable docstring, fails the build). Then:

* the API reference has an entry for every name in ``gradxform.__all__`` and for nothing else;
* every transformation and optimizer shows its update rule as math, and no reST math or
  ``<<arg>>`` placeholder is left unconverted;
* nothing is loaded from the network (MathJax is served from the site);
* every notebook has a page;
* the ``pycon`` examples of every page run as doctests, and the ``python`` blocks of every page
  that says ``<!-- run-python-blocks -->`` run in order as one script (pages without the marker
  may show fragments); both with JAX's default promotion rules, as a user has them.
"""

from __future__ import annotations

import doctest
import html
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest

import gradxform as gx

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))

_spec = importlib.util.spec_from_file_location("docs_rst", DOCS / "hooks" / "rst.py")
rst = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rst)


def build_site(out: Path) -> Path:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["NO_MKDOCS_2_WARNING"] = "1"  # a banner about a future mkdocs, not about this site
    env["JAX_PLATFORMS"] = "cpu"
    start = time.perf_counter()
    result = subprocess.run(  # the timeout guards against a hang; timing is not a test
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, f"mkdocs build failed:\n{result.stdout}\n{result.stderr}"
    print(f"mkdocs build: {seconds:.1f} s")
    return out


def _api_html(site: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (site / "api").glob("*.html")}


def _root_ids(text: str) -> list[str]:
    """Names with a top-level entry (``id="gradxform.name"``, not members)."""
    return re.findall(r'id="gradxform\.([A-Za-z_]\w*)"', text)


def check_api_reference_covers_exactly_all(site):
    pages = _api_html(site)
    documented: dict[str, str] = {}
    for page, text in pages.items():
        if page == "index.html":
            continue
        for name in _root_ids(text):
            assert name not in documented, f"{name} is documented twice"
            documented[name] = page
    exported = set(gx.__all__)
    assert not exported - set(documented), (
        f"in gradxform.__all__ but not in the API reference: {sorted(exported - set(documented))}")
    assert not set(documented) - exported, (
        f"in the API reference but not in gradxform.__all__: "
        f"{sorted(set(documented) - exported)}")
    index = pages["index.html"]
    listed = set(re.findall(r'href="[^"]*#gradxform\.([A-Za-z_]\w*)"', index))
    assert listed == exported, f"API index differs from __all__: {listed ^ exported}"


def _sections(text: str) -> dict[str, str]:
    """The HTML of each top-level entry, up to the next one."""
    marks = [(m.start(), m.group(1)) for m in
             re.finditer(r'<h2 id="gradxform\.([A-Za-z_]\w*)"', text)]
    return {name: text[start:(marks[i + 1][0] if i + 1 < len(marks) else len(text))]
            for i, (start, name) in enumerate(marks)}


def _is_math_bearing(obj) -> bool:
    """Transformations and optimizers: their docstrings must state the update rule as math."""
    module = getattr(obj, "__module__", "") or ""
    is_transform = inspect.isclass(obj) and issubclass(obj, gx.GradientTransformation)
    return (module.startswith(("gradxform._src.transforms", "gradxform._src.optimizers"))
            and (is_transform or inspect.isfunction(obj)))


def check_every_transformation_and_optimizer_shows_its_math(site):
    sections = {}
    for text in _api_html(site).values():
        sections.update(_sections(text))
    missing = [name for name in gx.__all__
               if _is_math_bearing(getattr(gx, name))
               and 'class="arithmatex"' not in sections.get(name, "")]
    assert not missing, f"no rendered math in the reference entries of {missing}"


def check_no_unconverted_markup(site):
    for path in site.rglob("*.html"):
        text = html.unescape(path.read_text())
        for leftover in (".. math::", ":math:`", ":class:`", ":func:`", "[[docstring",
                         "[[optax-names"):
            assert leftover not in text, f"{path.relative_to(site)} contains {leftover!r}"
        assert not re.search(r"<<\w+>>", text), f"{path.relative_to(site)}: unfilled <<arg>>"


def check_site_is_offline(site):
    assert (site / "assets" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000
    for path in site.rglob("*.html"):
        text = path.read_text()
        remote = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(?:https?:)?//[^"]+"', text)
        assert not remote, f"{path.relative_to(site)} loads {remote[:3]}"
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text


def check_guides_and_notebooks_have_pages(site):
    for page in PAGES:
        assert (site / page.with_suffix(".html").name).exists(), page.name
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert (site / "notebooks" / f"{nb.stem}.html").exists(), nb.name
        assert (site / "notebooks" / nb.name).exists(), f"{nb.name} is not downloadable"
    migration = (site / "migrating_from_optax.html").read_text()
    assert "gx.adamw" in migration and "optax.adamw" in migration  # the generated table
    dtypes = html.unescape((site / "dtype_policy.html").read_text())
    assert "Accumulators of low-precision params are float32" in dtypes  # the included docstring


def test_site(tmp_path):
    """One build (the checks share it; separate tests would build once per xdist worker)."""
    site = build_site(tmp_path / "site")
    check_api_reference_covers_exactly_all(site)
    check_every_transformation_and_optimizer_shows_its_math(site)
    check_no_unconverted_markup(site)
    check_site_is_offline(site)
    check_guides_and_notebooks_have_pages(site)


# --------------------------------------------------------------------------------------------
# The examples of the pages run.


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


@pytest.fixture
def user_promotion():
    """JAX's default promotion rules, as a user has them (the suite runs stricter ones)."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p.read_text(), "pycon")],
                         ids=lambda p: p.stem)
def test_pycon_examples(page, user_promotion):
    text = "\n".join(_blocks(page.read_text(), "pycon"))
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, out=lambda s: print(s, end=""))
    assert test.examples, f"{page.name}: no examples found"
    assert runner.failures == 0, f"{page.name}: {runner.failures} example(s) failed (see output)"


RUN_MARKER = "<!-- run-python-blocks -->"


def test_runnable_pages_are_marked():
    """The pages whose examples are meant to run say so (and so are tested)."""
    marked = {p.stem for p in PAGES if RUN_MARKER in p.read_text()}
    assert {"index", "integrations", "which_optimizer"} <= marked, marked


@pytest.mark.parametrize("page", [p for p in PAGES if RUN_MARKER in p.read_text()],
                         ids=lambda p: p.stem)
def test_python_blocks_run(page, user_promotion, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "\n\n".join(_blocks(page.read_text(), "python"))
    assert code, f"{page.name} has {RUN_MARKER} but no python blocks"
    exec(compile(code, str(page), "exec"), {"__name__": f"docs_{page.stem}"})


# --------------------------------------------------------------------------------------------
# The reST-to-Markdown conversion the site applies to docstrings.


def test_rst_math_directive_and_roles():
    text = ("Summary.\n\n.. math:: a = b\n\nwith :math:`x_t` and :class:`~gradxform.adam`, "
            ":func:`private_helper`.\n\n.. math::\n    u = v, \\\\\n    w = z\n\nEnd.")
    out = rst.convert(text, rst.exported_linker(["adam"]))
    assert "$$\na = b\n$$" in out
    assert "$x_t$" in out
    assert "[`adam`][gradxform.adam]" in out and "`private_helper`" in out
    assert "$$\n\\begin{gathered}\nu = v, \\\\\nw = z\n\\end{gathered}\n$$" in out
    assert out.rstrip().endswith("End.")


def test_rst_literal_blocks_become_code():
    text = "Intro.\n\nExample::\n\n    opt = gx.adam(1e-3)\n    x = 1\n\nAfter."
    out = rst.convert(text)
    assert "**Example:**\n\n```python\nopt = gx.adam(1e-3)\nx = 1\n```" in out
    assert out.rstrip().endswith("After.")
    indented = rst.convert("Args:\n  x: see below::\n\n      y = 2\n")
    assert "  x: see below:\n\n  ```python\n  y = 2\n  ```" in indented


def test_rst_admonitions():
    out = rst.convert("Text.\n\n.. warning::\n   Mind :math:`x`.\n\nMore.")
    assert "!!! warning\n    Mind $x$." in out and out.rstrip().endswith("More.")
    assert "!!! note\n    Short." in rst.convert(".. note:: Short.")


def test_shared_argument_texts_are_filled():
    out = rst.fill_shared_args("Args:\n  <<eps>>\n")
    assert "<<" not in out and "eps: added to the denominator" in out
