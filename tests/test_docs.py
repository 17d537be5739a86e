"""The documentation site: built offline with no warnings, and read in a real browser.

The site (``docs/``, Sphinx + MyST-NB) is built with the command the README gives,
warnings as errors, into a temporary folder, or taken from ``MINIGAN_SITE`` where CI
has just built it. It is served on loopback and loaded in headless Chromium (Debian's
``chromium``, driven by Playwright): the landing page, one lesson with math and
pictures, and one API page. On each, MathJax has typeset the math (no raw ``$...$``
or ``\\(`` left in the text a reader sees), every picture has loaded, nothing was
asked of any host but the loopback server, and the console shows no error. A
screenshot of each goes to ``docs/_build/screenshots/`` (``MINIGAN_SCREENSHOTS``
overrides it), for a person to look at.

Needs ``pip install -e ".[docs]"`` and Chromium (``apt-get install chromium``); skips,
saying which is missing, without them.
"""

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LESSONS = sorted((ROOT / "lessons").glob("[0-9]*.ipynb"))
BUILD_COMMAND = ["-m", "sphinx", "-W", "--keep-going", "-n", "-q", str(DOCS)]
# Text a reader sees that still holds TeX: dollar pairs, \( \) and \[ \] delimiters.
RAW_TEX = re.compile(r"\$[^$\s][^$\n]*\$|\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{")


def public_modules() -> list[str]:
    pytest.importorskip("sphinx", reason='sphinx is missing: pip install -e ".[docs]"')
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import minigan_docs
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    return minigan_docs.public_modules()


def test_the_api_reference_lists_every_public_module():
    """Each module gets its page by itself; the reference's index must also name it."""
    index = (DOCS / "api" / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s+(minigan(?:\.\w+)*)\s*$", index, flags=re.MULTILINE))
    missing = sorted(set(public_modules()) - listed)
    assert not missing, f"docs/api/index.md does not list {missing}"


def chromium_executable() -> str | None:
    for candidate in (os.environ.get("MINIGAN_CHROMIUM"), "/usr/lib/chromium/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site: ``MINIGAN_SITE``, or built here with the README's command."""
    for module in ("sphinx", "myst_nb", "sphinx_book_theme"):
        pytest.importorskip(module, reason=f'{module} is missing: pip install -e ".[docs]"')
    if os.environ.get("MINIGAN_SITE"):
        return Path(os.environ["MINIGAN_SITE"]).resolve()
    out = tmp_path_factory.mktemp("site") / "html"
    build = subprocess.run(
        [sys.executable, *BUILD_COMMAND, str(out)], capture_output=True, text=True, cwd=ROOT
    )
    assert build.returncode == 0, f"the site does not build cleanly:\n{build.stderr[-4000:]}"
    return out


def test_every_lesson_is_in_the_course(site):
    pages = {p.stem for p in (site / "course").glob("*.html")}
    for lesson in LESSONS:
        assert lesson.stem in pages, f"{lesson.name} has no page in the course"
        page = (site / "course" / f"{lesson.stem}.html").read_text(encoding="utf-8")
        assert re.search(rf'href="[^"]*_downloads/\w+/{lesson.name}"', page), (
            f"the page of {lesson.name} offers no download of it"
        )
    course = (site / "course" / "index.html").read_text(encoding="utf-8")
    for lesson in LESSONS:
        assert f'href="{lesson.stem}.html"' in course, f"the course page lacks {lesson.name}"


def test_nothing_is_fetched_from_the_network(site):
    """No page or style sheet names an http(s) script, style sheet, font or picture."""
    remote = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)
    offenders = []
    for page in site.rglob("*.html"):
        for tag in re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*>", page.read_text()):
            if remote.search(tag) and not re.search(r"""rel\s*=\s*["']?canonical""", tag):
                offenders.append(f"{page.relative_to(site)}: {tag[:120]}")
    for sheet in site.rglob("*.css"):
        for url in re.findall(r"""(?:url\(|@import\s+)\s*["']?((?:https?:)?//[^"')\s]+)""",
                              sheet.read_text(errors="replace")):  # fmt: skip
            offenders.append(f"{sheet.relative_to(site)}: {url}")
    assert not offenders, "\n".join(offenders[:20])


def chromium_or_skip() -> str:
    pytest.importorskip("playwright", reason='playwright is missing: pip install -e ".[docs]"')
    executable = chromium_executable()
    if executable is None:
        pytest.skip("Chromium is missing: apt-get install chromium (or set MINIGAN_CHROMIUM)")
    return executable


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


def screenshots_folder() -> Path:
    folder = Path(os.environ.get("MINIGAN_SCREENSHOTS", DOCS / "_build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def lesson_with_math_and_pictures() -> Path:
    """The first lesson whose prose has display math and whose outputs have a picture."""
    for path in LESSONS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        prose = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        pictures = any(
            "image/png" in output.get("data", {})
            for cell in cells
            for output in cell.get("outputs", [])
        )
        if "$$" in prose and pictures:
            return path
    pytest.fail("no lesson has both display math and a picture")


PAGES = {
    "landing": lambda: "index.html",
    "lesson": lambda: f"course/{lesson_with_math_and_pictures().stem}.html",
    "api": lambda: "api/generated/minigan.score.html",
}

VISIBLE_PROSE = """() => {
    const article = document.querySelector("article") || document.body;
    const copy = article.cloneNode(true);
    copy.querySelectorAll("pre, code, script, style, mjx-container, .MathJax")
        .forEach(e => e.remove());
    return copy.innerText;
}"""

IMAGES = """async () => {
    const images = Array.from(document.images);
    for (const image of images) {
        image.loading = "eager";
        if (!image.complete) {
            await new Promise(done => { image.onload = done; image.onerror = done; });
        }
    }
    return images.map(image => ({src: image.getAttribute("src"), width: image.naturalWidth}));
}"""


@pytest.mark.parametrize("name", list(PAGES))
def test_page_in_a_real_browser(name, site, server, browser):
    path = PAGES[name]()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, foreign, failed = [], [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status < 400 or failed.append(f"{r.url}: {r.status}"))

    def only_loopback(route):
        if urlparse(route.request.url).hostname == "127.0.0.1" or route.request.url.startswith(
            "data:"
        ):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.goto(f"{server}/{path}", wait_until="load")
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("() => MathJax.startup.promise")

    typeset = page.locator("mjx-container").count()
    assert typeset > 0, f"{path}: MathJax typeset nothing"
    assert page.locator("mjx-merror").count() == 0, f"{path}: MathJax could not read some TeX"
    prose = page.evaluate(VISIBLE_PROSE)
    raw = sorted({m.group(0)[:60] for m in RAW_TEX.finditer(prose)})
    assert not raw, f"{path}: TeX left untypeset: {raw[:10]}"

    images = page.evaluate(IMAGES)
    broken = [image["src"] for image in images if image["width"] == 0]
    assert not broken, f"{path}: pictures that did not load: {broken}"
    assert page.locator("nav.bd-links a").count() > 5, f"{path}: no navigation"

    folder = screenshots_folder()
    page.screenshot(path=folder / f"{name}.png", full_page=name == "landing")
    if name == "lesson":
        page.locator("mjx-container[display]").first.scroll_into_view_if_needed()
        page.screenshot(path=folder / f"{name}-math.png")
        page.locator("article img").first.scroll_into_view_if_needed()
        page.screenshot(path=folder / f"{name}-picture.png")
    if name == "api":
        page.locator("mjx-container[display]").first.scroll_into_view_if_needed()
        page.screenshot(path=folder / f"{name}-math.png")
    print(f"{path}: {typeset} formulas, {len(images)} pictures; screenshots in {folder}")
    page.close()

    assert not foreign, f"{path}: asked hosts other than loopback for {foreign}"
    assert not failed, f"{path}: requests that failed: {failed}"
    assert not errors, f"{path}: console errors: {errors}"
