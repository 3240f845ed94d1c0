"""The rendered book in headless Chromium, offline, on a desktop and a phone: every page loads with nothing broken.

For every HTML page of the built book (``_build/html``, or ``$BOOK_HTML``), served on 127.0.0.1, at two
viewports (desktop 1280 px, phone 390 px): no console error, no uncaught page error, no failed request or
HTTP error, no request to any other host (such requests are blocked and reported), no broken image, no
local link to a missing page or anchor, no script loaded twice; MathJax typesets where there is math, saved
widgets render where there are widgets. Chapter pages show executed outputs and figures, the comparison page
its table, the references page its bibliography.

Reading checks (issue 22): a chapter's set-up (the ``load_config`` cell) is folded away; no chapter carries a
saved widget control (a control cannot redraw its figure without a kernel, so those cells are removed from
the book and a static figure stands in); no figure is shown below ``MIN_FIGURE_SCALE`` of its natural size
(read from ``book/_static/legible-figures.js``), so its smallest text (``FIGURE_TEXT_PT`` points at the
inline backend's 100 dpi) stays at least ``MIN_TEXT_PX`` CSS pixels, on the phone too; nothing wider than its
column (an equation, a table, a figure) is cut off: it scrolls, and the page itself never scrolls sideways.
A full-page screenshot of each page goes to ``_build/screenshots/<viewport>`` (or ``$BOOK_SCREENSHOTS``).

Skips only when no built book exists: ``scripts/test_book.sh`` builds the smoke book first, then runs
this file. Chromium is Debian's (``apt-get install -y chromium``; ``$CHROMIUM`` overrides the path).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
BOOK = Path(os.environ.get("BOOK_HTML", REPO / "_build" / "html"))
SCREENSHOTS = Path(os.environ.get("BOOK_SCREENSHOTS", REPO / "_build" / "screenshots"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
PAGE_TIMEOUT_MS = 120_000  # generous: a loaded 2-core machine takes seconds to lay out a long chapter
REDIRECT = re.compile(r'<meta http-equiv="Refresh"', re.IGNORECASE)
NO_BOOK = f"no built book at {BOOK} (scripts/test_book.sh builds the smoke book and runs this test)"
# ipywidgets models that a reader would operate; a saved one cannot run its callback without a kernel,
# so its notebook must also draw a static figure (progress bars, e.g. tqdm's, are not controls).
CONTROL_MODELS = re.compile(r"(Slider|Dropdown|Checkbox|ToggleButton|RadioButtons|Select|Text|Button|Play|Picker)Model$")
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True},
}
MIN_FIGURE_SCALE = float(re.search(r"MIN_FIGURE_SCALE = ([0-9.]+)", (REPO / "book" / "_static" / "legible-figures.js").read_text()).group(1))
FIGURE_TEXT_PT = 8  # the smallest text the chapters draw in a figure (matplotlib points; inline figures are 100 dpi)
MIN_TEXT_PX = 7.0
# chapters owned by others that do not yet fold their set-up or remove their widget controls: to be emptied
NOT_YET_SETUP: set[str] = set()
NOT_YET_WIDGETS: set[str] = set()


def _pages() -> list:
    if not (BOOK / "index.html").is_file():
        return [pytest.param("index.html", marks=pytest.mark.skip(reason=NO_BOOK))]
    return sorted(p.relative_to(BOOK).as_posix() for p in BOOK.rglob("*.html") if not p.relative_to(BOOK).parts[0].startswith("_"))


PAGES = _pages()


@pytest.fixture(scope="module")
def server():
    """The built book over HTTP on 127.0.0.1 (a free port), for the duration of the module."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(BOOK)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)")
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _broken_local_link(href: str, base: str) -> str | None:
    """Why a link into the book is broken (missing file or anchor), or None. Other hosts are not checked."""
    parts = urlsplit(href)
    if not href.startswith(base):
        return None
    target = BOOK / unquote(parts.path[len(urlsplit(base).path):])
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{href}: no such file"
    if parts.fragment and target.suffix == ".html":
        anchor = re.escape(unquote(parts.fragment))
        if not re.search(rf'(id|name)="{anchor}"', target.read_text(errors="replace")):
            return f"{href}: no anchor #{parts.fragment}"
    return None


def _control_widgets(page) -> int:
    """How many saved widget views on the page are or contain controls (see CONTROL_MODELS)."""
    state = page.eval_on_selector_all('script[type="application/vnd.jupyter.widget-state+json"]', "s => s.map(e => e.textContent)")
    models = {k: v for text in state for k, v in json.loads(text).get("state", {}).items()}

    def has_control(model_id: str) -> bool:
        model = models.get(model_id, {})
        children = [c.removeprefix("IPY_MODEL_") for c in model.get("state", {}).get("children", [])]
        return bool(CONTROL_MODELS.search(model.get("model_name", ""))) or any(has_control(c) for c in children)

    views = page.eval_on_selector_all('script[type="application/vnd.jupyter.widget-view+json"]', "s => s.map(e => e.textContent)")
    return sum(has_control(json.loads(v)["model_id"]) for v in views)


def _legibility_problems(page) -> list[str]:
    """Figures shown below MIN_FIGURE_SCALE, wide content that is cut off, a page that scrolls sideways."""
    problems = []
    figures = page.eval_on_selector_all(
        "div.cell_output img",
        "imgs => imgs.filter(i => i.naturalWidth > 0).map(i => [i.src.split('/').pop(), i.getBoundingClientRect().width, i.naturalWidth])")
    for name, shown, natural in figures:
        scale = shown / natural
        if shown < natural - 1 and scale < MIN_FIGURE_SCALE - 0.01:
            problems.append(f"figure {name} shown at {scale:.0%} of its width: its {FIGURE_TEXT_PT} pt text is "
                            f"{FIGURE_TEXT_PT * 100 / 72 * scale:.1f} px (minimum {MIN_TEXT_PX} px)")
    assert FIGURE_TEXT_PT * 100 / 72 * MIN_FIGURE_SCALE >= MIN_TEXT_PX, "MIN_FIGURE_SCALE is too small for legible text"
    cut = page.eval_on_selector_all("div.math, div.cell_output, table", """els => els.filter(e => {
        if (e.scrollWidth <= e.clientWidth + 1) return false;
        for (let a = e; a && a !== document.body; a = a.parentElement) {
            if (['auto', 'scroll'].includes(getComputedStyle(a).overflowX)) return false;  // it scrolls
        }
        return true;
    }).map(e => e.tagName.toLowerCase() + '.' + String(e.className).split(' ')[0] + ': ' + e.scrollWidth + ' > ' + e.clientWidth)""")
    problems += [f"content cut off without a scroll bar: {c}" for c in cut]
    page_width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    if page_width > viewport + 1:
        problems.append(f"the page scrolls sideways: {page_width} px of content in a {viewport} px window")
    return problems


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
@pytest.mark.parametrize("path", PAGES)
def test_page_loads_offline_with_nothing_broken(path: str, viewport: str, server: str, browser):
    context = browser.new_context(**VIEWPORTS[viewport])
    problems: list[str] = []

    def route(r):
        if urlsplit(r.request.url).hostname in LOCAL_HOSTS:
            r.continue_()
        else:
            problems.append(f"request to another host: {r.request.url}")
            r.abort()

    context.route("**/*", route)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(server + path, wait_until="load")
    if REDIRECT.search((BOOK / path).read_text(errors="replace")):  # index.html forwards to the first chapter
        page.wait_for_url(lambda url: url != server + path, wait_until="load")
    page.evaluate("async () => { if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise; }")
    views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    if views:
        page.wait_for_function("n => document.querySelectorAll('.widget-subarea').length >= n", arg=views)
    page.wait_for_timeout(500)  # late requests (fonts) show up as problems too

    problems += [f"broken image: {src}" for src in page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")]
    hrefs = set(page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"))
    problems += sorted(filter(None, (_broken_local_link(h, server) for h in hrefs)))
    scripts = page.eval_on_selector_all("script[src]", "s => s.map(e => e.src.split('?')[0])")
    problems += [f"script loaded twice: {s}" for s in sorted({s for s in scripts if scripts.count(s) > 1})]
    inline = page.eval_on_selector_all("script:not([src])", "s => s.map(e => e.textContent.trim()).filter(t => t)")
    problems += [f"inline script twice: {s[:60]}" for s in sorted({s for s in inline if inline.count(s) > 1})]
    if page.locator(".math").count():
        assert page.locator("mjx-container").count(), "the page has math but MathJax typeset none of it"
    assert page.locator(".output.traceback, .output.error").count() == 0, "an executed cell shows an error"
    text = page.inner_text("body")
    assert ".partial-" not in text and str(REPO) not in text, "the page shows a temporary or absolute run path"

    if path.startswith("notebooks/"):
        outputs = page.locator(".cell_output").count()
        figures = page.locator(".cell_output img").count()
        assert outputs and figures, f"a chapter must show its executed outputs and figures ({outputs} outputs, {figures} figures)"
        controls = _control_widgets(page)
        if path in NOT_YET_WIDGETS:
            assert figures >= controls, f"{controls} widget controls but only {figures} figures: each control needs a static figure"
        else:
            assert controls == 0, (f"{controls} saved widget controls: they cannot redraw without a kernel; tag their cells "
                                   "remove-cell and draw a static figure")
        if path not in NOT_YET_SETUP:
            shown = page.inner_text("main") if page.locator("main").count() else text
            assert "load_config(" not in shown, "the set-up cell's code is shown: tag it hide-input"
            assert page.locator(".tag_hide-input, .tag_hide-cell").count(), "no folded set-up cell (hide-input / hide-cell)"
    if path.endswith("comparison.html"):
        assert page.locator("table.comparison-table tbody tr").count(), "the comparison page has no comparison table"
        assert page.locator("table.comparison-table tr.ok td a").count(), "no number in the comparison table links to its run"
        assert page.locator("table.comparison-table tr.missing td a").count() == 0, "a missing chapter shows numbers"
    problems += _legibility_problems(page)
    (SCREENSHOTS / viewport).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / viewport / (path.replace("/", "__").removesuffix(".html") + ".png")), full_page=True)
    context.close()
    assert not problems, f"{path} ({viewport}):\n" + "\n".join(problems)


def test_book_has_every_chapter_the_comparison_and_a_bibliography():
    if not (BOOK / "index.html").is_file():
        pytest.skip(NO_BOOK)
    pages = {p.stem for p in (BOOK / "notebooks").glob("*.html")}
    notebooks = {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}
    assert not notebooks - pages, f"notebooks without a page in the book (add them to _toc.yml): {sorted(notebooks - pages)}"
    assert any(stem.endswith("_comparison") for stem in pages), f"no comparison chapter among {sorted(pages)}"
    citations = [p for p in BOOK.rglob("*.html") if 'class="citation"' in p.read_text(errors="replace")]
    assert citations, "no page lists bibliography entries"
