"""Griffe extension for the API pages.

- A name a package re-exports from its private modules (`from ._plrnn import PLRNN as PLRNN`,
  the layout of STYLE.md) is public, so `::: dynrnn.models` lists exactly the package's
  re-exports. A package with `__all__` keeps it.
- The docstrings start lists right after a line of text (`**Arguments:**` then `- x: ...`),
  which Python-Markdown reads as one paragraph; a blank line is put before such a list (outside
  code fences), so the sections render as lists without changing the docstrings.
"""

from __future__ import annotations

import re

import griffe


_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s")


def _separate_lists(text: str) -> str:
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif (not fenced and _ITEM.match(line) and out and out[-1].strip()
              and not _ITEM.match(out[-1]) and not out[-1].startswith((" ", "\t"))):
            out.append("")
        out.append(line)
    return "\n".join(out)


class ReExportsArePublic(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self._visit(pkg)

    def _visit(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _separate_lists(obj.docstring.value)
        for member in list(obj.members.values()):
            if member.is_alias:
                if (obj.is_module and obj.is_init_module and obj.exports is None
                        and not member.name.startswith("_")
                        and member.target_path.startswith("dynrnn.")):
                    member.public = True
            else:
                self._visit(member)
