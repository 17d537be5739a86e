"""minigan's own Sphinx glue: the lessons in the course, MathJax shipped with the site.

- Every ``lessons/*.ipynb`` is copied to ``docs/course/`` before Sphinx looks for
  sources (a glob, so renumbered and new lessons appear by themselves; copies of
  lessons that no longer exist are removed). A copy is rewritten only when its text
  changes, so an unchanged lesson is not read again. An exercise's ``solution`` cell gets the
  ``hide-input`` tag, so the site folds it away as Jupyter does, and a line under the
  title offers the original notebook for download.
- One API page per public module (``api/generated/minigan.*.rst``, an ``automodule``
  each), found by walking the package, so a new module gets its page. A name that a
  module re-exports from another public module (``minigan.nn.Module`` is
  ``minigan.module.Module``) is documented once, on its own module's page, and linked
  from the other.
- MathJax 3 (``tex-chtml-full.js`` and its woff fonts) is copied from the
  sphinx-mathjax-offline wheel into ``_static/mathjax``: no page loads anything from
  the network.
"""

import importlib
import json
import os
import pkgutil
import shutil
from importlib.util import find_spec
from pathlib import Path

from sphinx.errors import ExtensionError
from sphinx.util.fileutil import copy_asset

ROOT = Path(__file__).resolve().parents[2]
LESSONS = ROOT / "lessons"
COURSE = ROOT / "docs" / "course"
API_PAGES = ROOT / "docs" / "api" / "generated"
MATHJAX_FILES = ["tex-chtml-full.js", "output/chtml/fonts/woff-v2"]


def lesson_for_the_site(source: Path) -> str:
    """The notebook's text with its ``solution`` cells folded (``hide-input``), and a
    link to download the original notebook under its title."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "solution" in tags and "hide-input" not in tags:
            cell["metadata"]["tags"] = [*tags, "hide-input"]
    download = (
        f"*Download the notebook, {{download}}`{source.name} <../../lessons/{source.name}>`,"
        ' and run it yourself: `pip install -e ".[lessons]"`, then `jupyter lab lessons/`.*'
    )
    first = notebook["cells"][0]
    lines = "".join(first["source"]).split("\n")
    title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if first["cell_type"] != "markdown" or title is None:
        raise ExtensionError(f"{source}: the first cell should be markdown with a # title")
    lines[title + 1 : title + 1] = ["", download, ""]
    first["source"] = "\n".join(lines)
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def copy_lessons(app, config):
    lessons = sorted(LESSONS.glob("[0-9]*.ipynb"))
    if not lessons:
        raise ExtensionError(f"no lessons found in {LESSONS}")
    for stale in COURSE.glob("*.ipynb"):
        if not (LESSONS / stale.name).exists():
            stale.unlink()
    for source in lessons:
        target = COURSE / source.name
        write_if_changed(target, lesson_for_the_site(source))  # unchanged: not read again


def public_modules() -> list[str]:
    """Every module of minigan a user may import: no ``_private`` parts, no ``__main__``."""
    import minigan

    names = ["minigan"]
    for module in pkgutil.walk_packages(minigan.__path__, "minigan."):
        if not any(part.startswith("_") for part in module.name.split(".")):
            names.append(module.name)
    return sorted(names)


def write_if_changed(path: Path, text: str):
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)


def write_api_pages(app, config):
    names = public_modules()
    for stale in API_PAGES.glob("*.rst"):
        if stale.stem not in names:
            stale.unlink()
    for name in names:
        page = f"{name}\n{'=' * len(name)}\n\n.. automodule:: {name}\n"
        borrowed = reexports(name, names)
        if borrowed:
            page += f"   :exclude-members: {', '.join(attr for attr, _ in borrowed)}\n\n"
            links = ", ".join(f":py:obj:`{attr} <{home}.{attr}>`" for attr, home in borrowed)
            page += f"Also importable from here, documented with their own modules: {links}.\n"
        write_if_changed(API_PAGES / f"{name}.rst", page)


def reexports(name, names) -> list[tuple[str, str]]:
    """(attribute, home module) for each name in ``name``'s ``__all__`` that is defined in
    another of minigan's public modules ``names``."""
    module = importlib.import_module(name)
    found = []
    for attr in getattr(module, "__all__", []):
        home = getattr(getattr(module, attr, None), "__module__", None)
        if home != name and home in names:
            found.append((attr, home))
    return found


def mathjax_folder() -> Path:
    spec = find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError('MathJax not found: pip install -e ".[docs]" (sphinx-mathjax-offline)')
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"


def copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source = mathjax_folder()
    target = Path(app.outdir) / "_static" / "mathjax"
    for name in MATHJAX_FILES:
        if (source / name).is_dir():
            copy_asset(source / name, target / name)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target / name)


def setup(app):
    mathjax_folder()  # fail at once, with the fix, where MathJax is missing
    app.connect("config-inited", copy_lessons)
    app.connect("config-inited", write_api_pages)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
