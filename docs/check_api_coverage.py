"""Check that every public name of the documented packages has an entry in the built site.

    python docs/check_api_coverage.py SITE_DIR

Public names: the package's `__all__` when it has one, else every name in its namespace that
does not start with `_` and is defined inside dynrnn (the re-exports of STYLE.md). An entry is
an element whose `id` is the full dotted path (`dynrnn.models.PLRNN`), as mkdocstrings writes.
Exit code 1 lists the names without one.
"""

from __future__ import annotations

import importlib
import pathlib
import re
import sys
import types


PACKAGES = ["systems", "datasets", "io", "preprocess", "calcium", "models", "dsf", "forcing",
            "engines", "scan", "training", "tasks", "metrics", "regularizers", "plot"]


def public_names(package: str) -> list[str]:
    mod = importlib.import_module(f"dynrnn.{package}")
    if hasattr(mod, "__all__"):
        return sorted(mod.__all__)
    names = []
    for name, obj in vars(mod).items():
        if name.startswith("_"):
            continue
        if isinstance(obj, types.ModuleType):
            if obj.__name__.startswith(f"dynrnn.{package}."):
                names.append(name)
            continue
        if getattr(obj, "__module__", "").startswith("dynrnn"):
            names.append(name)
    return sorted(names)


def main(site: str) -> int:
    ids: set[str] = set()
    for page in pathlib.Path(site).rglob("*.html"):
        ids.update(re.findall(r'id="(dynrnn\.[\w.]+)"', page.read_text(encoding="utf-8")))
    missing = [f"dynrnn.{p}.{n}" for p in PACKAGES for n in public_names(p)
               if f"dynrnn.{p}.{n}" not in ids]
    total = sum(len(public_names(p)) for p in PACKAGES)
    if missing:
        print(f"{len(missing)} of {total} public names have no entry in {site}:")
        for m in missing:
            print(f"  {m}")
        return 1
    print(f"all {total} public names of {len(PACKAGES)} packages have an entry in {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
