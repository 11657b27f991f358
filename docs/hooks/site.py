"""mkdocs hooks: the generated parts of the documentation site.

* **API reference**, from ``gradxform.__all__``: one page per source module (``api/<module>.md``,
  e.g. ``api/transforms.adam.md``) with a ``::: gradxform.<name>`` entry for each exported
  name defined there, and an index of every name with its one-line summary. A name added to
  ``__all__`` appears without editing the documentation.
* **Notebooks**: each ``notebooks/*.ipynb`` becomes ``notebooks/<name>.md`` (markdown cells as
  they are, code cells as code blocks, outputs if the file has any; the committed notebooks are
  stripped, the test suite executes them) plus a copy of the ``.ipynb`` to download.
* **Navigation**: the ``"@api"`` and ``"@notebooks"`` placeholders of ``mkdocs.yml`` are replaced by
  the generated pages, and top-level pages the nav does not list are appended to "Guides".
* **Markers** in pages: ``[[docstring: dotted.module]]`` includes that module's docstring (so the
  dtype policy page cannot drift from ``gradxform/_src/dtypes.py``), ``[[optax-names]]`` the
  generated name-for-name table of the optax migration guide, ``[[optax-name-index]]`` every
  optax name and its gradxform counterpart (``docs/hooks/optax_names.py``),
  ``[[wrapper-composition]]`` the wrapper-composition table (``wrappers/composition.py``).
* **MathJax** is copied from the ``django-static-mathjax`` package (MathJax 3, no Django needed)
  into ``assets/mathjax/``: the site loads nothing from the network.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import rst  # noqa: E402  (docs/hooks/rst.py)

PACKAGE = "gradxform"
PRIVATE = f"{PACKAGE}._src."
MATHJAX = "assets/mathjax/tex-svg-full.js"
# Order of the API pages: the protocol first, then the building blocks, then the rest.
PAGE_ORDER = ["base", "module", "combine", "transforms", "optimizers", "wrappers", "schedules"]
# Classes whose public methods are part of the API (shown with their members).
WITH_MEMBERS = {"GradientTransformation", "OptState", "Step", "ParamSpec", "Module", "CSVLogger"}


# --------------------------------------------------------------------------------------------
# The API reference.


def _package():
    return importlib.import_module(PACKAGE)


def _home_module(obj) -> str:
    """The private module a public object is defined in, without the ``gradxform._src.`` prefix."""
    name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", PACKAGE)
    return name[len(PRIVATE):] if name.startswith(PRIVATE) else name


def api_pages() -> dict[str, list[str]]:
    """``{module: [exported names defined there]}``, in page order, names in ``__all__`` order."""
    pkg = _package()
    groups: dict[str, list[str]] = {}
    for name in pkg.__all__:
        groups.setdefault(_home_module(getattr(pkg, name)), []).append(name)

    def rank(module: str):
        head = module.split(".")[0]
        return (PAGE_ORDER.index(head) if head in PAGE_ORDER else len(PAGE_ORDER), module)

    return {module: groups[module] for module in sorted(groups, key=rank)}


def summary(obj) -> str:
    """The first sentence of a docstring, as Markdown on one line."""
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ")
    return rst.convert(first, rst.exported_linker(_package().__all__)).replace("|", "\\|")


def _entry(name: str, obj) -> str:
    lines = [f"::: {PACKAGE}.{name}"]
    if inspect.isclass(obj) and name in WITH_MEMBERS:
        lines += ["    options:", "      members: null", "      filters: ['!^_']",
                  "      show_if_no_docstring: false", "      inherited_members: false"]
    return "\n".join(lines)


def api_page(module: str, names: list[str]) -> str:
    pkg = _package()
    parts = [f"# {module}", ""]
    full = PRIVATE + module
    objs = [getattr(pkg, n) for n in names]
    if not all(inspect.ismodule(o) for o in objs):
        doc = inspect.getdoc(importlib.import_module(full)) if full != PACKAGE else None
        if doc:
            parts += [rst.convert(doc, rst.exported_linker(pkg.__all__)), ""]
    parts.append(f"Source: `{full.replace('.', '/')}.py`")
    parts.append("")
    for name, obj in zip(names, objs):
        parts += [_entry(name, obj), ""]
    return "\n".join(parts)


def api_index(pages: dict[str, list[str]]) -> str:
    pkg = _package()
    lines = [
        "# API reference",
        "",
        f"Everything `import {PACKAGE} as gx` exports (`gx.__all__`), grouped by the module that "
        "defines it. Each entry shows the update rule as math, the arguments and the "
        "conventions where libraries differ.",
        "",
    ]
    for module, names in pages.items():
        lines += [f"## [{module}]({module}.md)", "", "| name | summary |", "| --- | --- |"]
        for name in names:
            lines.append(f"| [`{name}`][{PACKAGE}.{name}] | {summary(getattr(pkg, name))} |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Notebooks.


def notebooks() -> list[Path]:
    """The notebooks, the quickstart first."""
    return sorted((ROOT / "notebooks").glob("*.ipynb"),
                  key=lambda p: (p.stem != "quickstart", p.stem))


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def notebook_title(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    first = _source(cells[0]) if cells else ""
    match = re.match(r"#\s+(.+)", first)
    return match.group(1).strip() if match else path.stem.replace("_", " ")


def notebook_markdown(path: Path) -> str:
    nb = json.loads(path.read_text())
    out: list[str] = []
    note = (f'!!! note "Notebook"\n    The source of `notebooks/{path.name}` '
            f"([download]({path.name})). The test suite executes every notebook in a fresh "
            "kernel; run it in Jupyter to see its plots and tables.\n")
    for i, cell in enumerate(nb["cells"]):
        src = _source(cell).rstrip()
        if cell["cell_type"] == "markdown":
            out.append(src)
            if i == 0:
                out.append(note)
        elif cell["cell_type"] == "code" and src:
            out.append(f"```python\n{src}\n```")
            for output in cell.get("outputs", []):
                out.extend(_output_markdown(output))
    return "\n\n".join(out) + "\n"


def _output_markdown(output) -> list[str]:
    data = output.get("data", {})
    if "image/png" in data:
        png = data["image/png"]
        png = "".join(png) if isinstance(png, list) else png
        return [f'<img alt="output" src="data:image/png;base64,{png.strip()}">']
    text = output.get("text") or data.get("text/plain")
    if text:
        text = "".join(text) if isinstance(text, list) else text
        return [f"```text\n{text.rstrip()}\n```"]
    return []


# --------------------------------------------------------------------------------------------
# Markers in pages.


def module_docstring(dotted: str) -> str:
    doc = inspect.getdoc(importlib.import_module(dotted)) or ""
    return rst.convert(doc, rst.exported_linker(_package().__all__))


def _signature(obj) -> dict[str, object] | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _fmt(value) -> str:
    if value is inspect.Parameter.empty:
        return "required"
    return f"`{value!r}`"


# What a signature comparison cannot say.
OPTAX_NOTES = {
    "GradientTransformation": "optax: a NamedTuple of two functions; here the base class of "
                              "transformations, which are frozen dataclass values",
    "OptState": "optax: a type alias for any state; here the state `init` returns, holding the "
                "one step count",
    "stateless": "the function is `fn(updates, params)` in both",
    "global_norm": "optax's is deprecated in favour of `optax.tree.norm`",
}


def optax_names() -> str:
    """The name-for-name table: every exported name optax also has, with argument differences."""
    try:
        import optax
    except ImportError:
        return "*(optax is not installed: the table is generated when it is.)*"
    pkg = _package()
    rows = ["| gradxform | optax | differences in the arguments |", "| --- | --- | --- |"]
    for name in pkg.__all__:
        theirs = getattr(optax, name, None)
        if theirs is None:
            continue
        mine = getattr(pkg, name)
        a, b = _signature(mine), _signature(theirs)
        notes = []
        if a is not None and b is not None:
            only_mine = [k for k in a if k not in b]
            only_theirs = [k for k in b if k not in a]
            changed = [k for k in a if k in b and repr(a[k]) != repr(b[k])]
            if only_mine:
                notes.append("only in gradxform: " + ", ".join(f"`{k}`" for k in only_mine))
            if only_theirs:
                notes.append("only in optax: " + ", ".join(f"`{k}`" for k in only_theirs))
            for k in changed:
                notes.append(f"`{k}`: {_fmt(a[k])} here, {_fmt(b[k])} in optax")
        if name in ("GradientTransformation", "OptState"):  # different kinds of things
            notes = [OPTAX_NOTES[name]]
        elif name in OPTAX_NOTES:
            notes = [OPTAX_NOTES[name]] + notes
        rows.append(f"| [`gx.{name}`][{PACKAGE}.{name}] | `optax.{name}` | "
                    f"{'; '.join(notes) or 'same arguments and defaults'} |")
    return "\n".join(rows)


_MARKER = re.compile(r"^\[\[(docstring: *(?P<module>[\w.]+)|(?P<table>optax-names|"
                     r"wrapper-composition|optax-name-index))\]\]\s*$", re.MULTILINE)


def optax_name_index() -> str:
    """Every public name of optax and what it is in gradxform (``docs/hooks/optax_names.py``)."""
    try:
        import optax  # noqa: F401
    except ImportError:
        return "*(optax is not installed: the index is generated when it is.)*"
    spec = importlib.util.spec_from_file_location("optax_names", HERE / "optax_names.py")
    assert spec is not None and spec.loader is not None
    optax_names = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(optax_names)
    return optax_names.index_markdown()


def wrapper_composition() -> str:
    """The wrapper-composition table, from the rules the wrappers apply."""
    from gradxform._src.wrappers import composition

    return composition.table_markdown()


def expand_markers(markdown: str) -> str:
    def replace(m: re.Match) -> str:
        if m.group("module"):
            return module_docstring(m.group("module"))
        if m.group("table") == "wrapper-composition":
            return wrapper_composition()
        if m.group("table") == "optax-name-index":
            return optax_name_index()
        return optax_names()

    return _MARKER.sub(replace, markdown)


# --------------------------------------------------------------------------------------------
# mkdocs events.


def _listed(nav) -> set[str]:
    found: set[str] = set()
    if isinstance(nav, str):
        found.add(nav)
    elif isinstance(nav, list):
        for item in nav:
            found |= _listed(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            found |= _listed(value)
    return found


def on_config(config, **kwargs):
    pages = api_pages()
    api_nav = [{"Overview": "api/index.md"}] + [{m: f"api/{m}.md"} for m in pages]
    nb_nav = [{notebook_title(p): f"notebooks/{p.stem}.md"} for p in notebooks()]
    docs_dir = Path(config["docs_dir"])
    listed = _listed(config["nav"])
    extra = sorted(p.name for p in docs_dir.glob("*.md") if p.name not in listed)
    nav = []
    for item in config["nav"]:
        (title, value), = item.items()
        if value == "@api":
            value = api_nav
        elif value == "@notebooks":
            value = nb_nav
        elif title == "Guides" and isinstance(value, list):
            value = value + [{_page_title(docs_dir / name): name} for name in extra]
        nav.append({title: value})
    config["nav"] = nav
    return config


def _page_title(path: Path) -> str:
    match = re.search(r"^#\s+(.+)$", path.read_text(), re.MULTILINE)
    return match.group(1).strip() if match else path.stem.replace("_", " ")


def on_files(files, config, **kwargs):
    pages = api_pages()
    files.append(File.generated(config, "api/index.md", content=api_index(pages)))
    for module, names in pages.items():
        files.append(File.generated(config, f"api/{module}.md", content=api_page(module, names)))
    for path in notebooks():
        files.append(File.generated(config, f"notebooks/{path.stem}.md",
                                    content=notebook_markdown(path)))
        files.append(File.generated(config, f"notebooks/{path.name}", abs_src_path=str(path)))
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the docs need MathJax from the django-static-mathjax package: "
                           "pip install -e '.[test]'")
    script = Path(spec.submodule_search_locations[0]) / "static/mathjax/es5/tex-svg-full.js"
    files.append(File.generated(config, MATHJAX, abs_src_path=str(script)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    return expand_markers(markdown)
