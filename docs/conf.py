"""Sphinx configuration of minigan's site: the course, the guide and the API reference.

Build it (offline; warnings are errors):

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -n docs docs/_build/html

The lessons are rendered from their stored outputs and never executed here
(``nb_execution_mode = "off"``); ``_ext/minigan_docs.py`` brings them into the source
tree and ships MathJax with the site, so no page loads anything from the network.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the minigan being documented, installed or not

project = "minigan"
author = "the minigan authors"
copyright = "minigan's authors; MIT licence"
html_title = "minigan"
html_favicon = "_static/favicon.png"  # one generated digit

extensions = [
    "myst_nb",  # Markdown pages and the lesson notebooks (brings myst_parser along)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "minigan_docs",  # the lessons into course/, MathJax into _static/
]

root_doc = "index"
exclude_patterns = [
    "_build",
    "**/.ipynb_checkpoints",
    "quality/**",  # pictures and data of docs/quality.md, not pages of their own
]
html_static_path = ["_static"]
html_css_files = ["minigan.css"]

# The notebooks are stored executed; the tests run them, the site only shows them.
nb_execution_mode = "off"
nb_merge_streams = True  # a cell's prints read as one block, as in Jupyter
nb_code_prompt_show = "Show the solution"  # the only folded cells are exercises' solutions
nb_code_prompt_hide = "Hide the solution"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # [Known gaps](#known-gaps) and the like keep working
suppress_warnings = ["myst.header"]  # notebooks open with a title and jump levels freely

# MathJax from the sphinx-mathjax-offline wheel (MathJax 3.2.2), copied into _static by
# minigan_docs: the "full" build holds every TeX extension, so it never fetches one.
mathjax_path = "mathjax/tex-chtml-full.js"

# The API reference: one page per module (written by minigan_docs).
autosummary_generate = False  # minigan_docs writes the pages; the tables link to them
autodoc_member_order = "bysource"  # a module reads top to bottom, as its author wrote it
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_mock_imports = ["torch", "cupy", "cupyx"]  # optional extras: compare, gpu

# Broken cross-references are errors (-n). Names from NumPy, the standard library and
# the optional extras have no inventory here (intersphinx would need the network).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:(class|obj|data|exc)", r"(numpy|np|cupy|torch|pathlib|typing|collections|argparse)\..*"),
    (r"py:(class|obj)", r"(int|float|str|bool|bytes|dict|list|tuple|object|callable|None)"),
    # Base classes the modules keep to themselves (private, or not in nn.__all__).
    (r"py:class", r"minigan\.models\.dcgan\._Stack"),
    (r"py:class", r"minigan\.nn\.(BatchNorm|Convolution|Elementwise)"),
]

html_theme = "sphinx_book_theme"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,  # each lesson links to its notebook under its title
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "navigation_with_keys": False,
}
# Light by default: the lessons' plots are drawn on white. (An empty mode is also
# what the theme's script complains about in the console.)
html_context = {"default_mode": "light"}
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = False  # each lesson links to its original notebook instead
