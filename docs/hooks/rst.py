"""Docstrings to Markdown: the reStructuredText bits gradxform's docstrings use.

gradxform's docstrings are Google style with a few reST constructs, which this module turns into
the Markdown the documentation site renders (math through ``pymdownx.arithmatex``):

* ``.. math:: ...`` blocks (content on the directive's line and/or indented below) become
  ``$$ ... $$`` display math; a block with ``\\`` line breaks is wrapped in ``gathered``.
* ``:math:`x``` roles become ``$x$`` inline math.
* ``:class:`name```, ``:func:`~a.b.name``` and the like become links to the API reference if
  ``name`` is exported by gradxform, inline code otherwise.
* ``.. note::`` / ``.. warning::`` (and tip, important, caution, seealso) become admonitions.
* A paragraph ending in ``::`` followed by an indented block (``Example::``) becomes the paragraph
  ending in ``:`` and a fenced Python code block.

It is used by the griffe extension :class:`RestToMarkdown` (for the API reference) and by the
site hooks (for module docstrings included in guide pages). Nothing here imports mkdocs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|obj|data|exc):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")
_ADMONITION = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (?P<kind>note|warning|tip|important|caution|seealso)::[ \t]*"
    r"(?P<rest>.*)$")
_LITERAL = re.compile(r"^(?P<indent>[ \t]*)(?P<text>.*?)(?P<colons>:?:)[ \t]*$")


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_after(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """Lines from ``start`` indented more than ``indent`` (blank lines included), and the end."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent_of(lines[end]) > indent):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end], end


def _dedent(block: list[str]) -> list[str]:
    width = min((_indent_of(x) for x in block if x.strip()), default=0)
    return [x[width:] for x in block]


def math_block(tex: str, indent: str = "") -> list[str]:
    """A display-math block for arithmatex, at the given indentation."""
    body = [line for line in tex.strip().splitlines() if line.strip()]
    if any("\\\\" in line for line in body) and not any("\\begin" in line for line in body):
        body = ["\\begin{gathered}", *body, "\\end{gathered}"]
    return ["", indent + "$$", *(indent + line.strip() for line in body), indent + "$$", ""]


def convert(text: str, link: Callable[[str], str | None] | None = None) -> str:
    """Convert one docstring (already dedented) from gradxform's reST dialect to Markdown.

    ``link(name)`` returns the autorefs identifier for an exported ``name`` (or ``None``).
    """
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        if directive:
            indent = directive.group("indent")
            block, end = _block_after(lines, i + 1, len(indent))
            tex = "\n".join([directive.group("rest"), *_dedent(block)])
            out.extend(math_block(tex, indent))
            i = end
            continue
        admonition = _ADMONITION.match(line)
        if admonition:
            indent = admonition.group("indent")
            block, end = _block_after(lines, i + 1, len(indent))
            body = [admonition.group("rest")] + _dedent(block) if admonition.group("rest") \
                else _dedent(block)
            kind = {"seealso": "info", "important": "warning", "caution": "warning"}.get(
                admonition.group("kind"), admonition.group("kind"))
            out.extend(["", f"{indent}!!! {kind}"])
            out.extend(f"{indent}    {_inline(x, link)}" if x.strip() else "" for x in body)
            out.append("")
            i = end
            continue
        literal = _LITERAL.match(line)
        if (literal and literal.group("colons") == "::" and i + 1 < len(lines)
                and not lines[i + 1].strip()):
            indent = len(literal.group("indent"))
            block, end = _block_after(lines, i + 1, indent)
            while block and not block[0].strip():
                block = block[1:]
            if block:
                text_part = literal.group("text").rstrip()
                lead = literal.group("indent")
                if text_part in ("Example", "Examples"):  # not a Google-style section here
                    out.append(f"{lead}**{text_part}:**")
                elif text_part:
                    out.append(f"{lead}{_inline(text_part, link)}:")
                out.append("")
                out.append(f"{lead}```python")
                out.extend(f"{lead}{x}" if x.strip() else "" for x in _dedent(block))
                out.append(f"{lead}```")
                i = end
                continue
        out.append(_inline(line, link))
        i += 1
    return "\n".join(out)


def _inline(line: str, link: Callable[[str], str | None] | None) -> str:
    line = _MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", line)

    def role(m: re.Match) -> str:
        target = m.group(2)
        name = target.split(".")[-1] if m.group(1) == "~" or "." in target else target
        ident = link(name) if link else None
        return f"[`{name}`][{ident}]" if ident else f"`{name}`"

    return _ROLE.sub(role, line)


def fill_shared_args(text: str) -> str:
    """Fill ``<<name>>`` argument lines from ``gradxform._src.docs.ARGS``.

    Runtime docstrings are filled by ``docs.args`` already; griffe may read the source's (for
    functions wrapped by ``api``), so the site fills them the same way.
    """
    if "<<" not in text:
        return text
    from gradxform._src import docs

    class Holder:
        pass

    holder = Holder()
    holder.__doc__ = text
    return docs.args(holder).__doc__


def exported_linker(names: Iterable[str],
                    package: str = "gradxform") -> Callable[[str], str | None]:
    """A ``link`` function for :func:`convert` resolving the names a package exports."""
    exported = set(names)
    return lambda name: f"{package}.{name}" if name in exported else None


try:  # the griffe extension, when griffe is installed (building the site)
    import griffe

    class RestToMarkdown(griffe.Extension):
        """Convert every docstring gradxform's objects carry before mkdocstrings renders it."""

        def __init__(self, package: str = "gradxform") -> None:
            super().__init__()
            self._package = package
            self._link = None

        def _linker(self):
            if self._link is None:
                import importlib

                module = importlib.import_module(self._package)
                self._link = exported_linker(module.__all__, self._package)
            return self._link

        def on_object(self, *, obj, **kwargs) -> None:
            if obj.is_alias or not obj.path.startswith(self._package):
                return
            for parameter in getattr(obj, "parameters", None) or ():
                # ``Any`` says nothing: the argument texts say what is accepted.
                if str(parameter.annotation) in ("Any", "typing.Any"):
                    parameter.annotation = None
            if obj.docstring is None:
                return
            obj.docstring.value = convert(fill_shared_args(obj.docstring.value), self._linker())

except ImportError:  # pragma: no cover - only the conversion functions are needed then
    pass
