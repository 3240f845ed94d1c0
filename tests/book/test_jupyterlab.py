"""The third way into the book, tested: a chapter run in JupyterLab, in headless Chromium, offline.

JupyterLab is the one ``make install`` puts in ``.venv`` (README: ``.venv/bin/jupyter lab notebooks/``). The test
starts it on 127.0.0.1 (a free port, a token, no browser) in a temporary folder holding a copy of chapter 4,
whose parameters cell is edited the way a reader would: ``preset = "smoke"`` and a run folder inside the
temporary folder. It opens the chapter, runs all cells from the Run menu, waits for the kernel, saves, and
checks that every code cell ran, that no cell output is an error, and that the chapter's slider (removed from
the rendered book, live here) is on the page. Requests to other hosts are blocked.

Needs Debian's chromium, like ``test_book_browser.py`` (``$CHROMIUM`` overrides the path); run by
``scripts/test_book.sh``. Takes about two minutes on two cores. On a timeout it fails with the cell prompts, the kernel
status and a screenshot (``_build/screenshots/jupyterlab-timeout.png``); ``JUPYTERLAB_RUN_TIMEOUT_S`` sets the wait.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
CHAPTER = "04_sge_net.ipynb"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
RUN_TIMEOUT_S = int(os.environ.get("JUPYTERLAB_RUN_TIMEOUT_S", "420"))
SCREENSHOT = REPO / "_build" / "screenshots" / "jupyterlab-timeout.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reader_copy(folder: Path) -> Path:
    """The chapter with its parameters cell set to the smoke preset and a run folder under ``folder``."""
    nb = json.loads((REPO / "notebooks" / CHAPTER).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    source = "".join(cell["source"])
    assert 'preset = "cpu"' in source and "run_dir = None" in source, "the parameters cell changed: update this test"
    source = source.replace('preset = "cpu"', 'preset = "smoke"').replace("run_dir = None", f'run_dir = "{folder / "run"}"')
    cell["source"] = source
    target = folder / CHAPTER
    target.write_text(json.dumps(nb))
    return target


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a reader's copy of the chapter: yields (base URL, token, notebook path)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)")
    folder = tmp_path_factory.mktemp("lab")
    notebook = _reader_copy(folder)
    settings = folder / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell (JupyterLab 4 otherwise virtualises long notebooks and leaves cells out of the page)
    # and start the notebook's kernel without asking (JupyterLab 4 otherwise may open a "Select Kernel" dialog)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none", "autoStartDefaultKernel": True}))
    port, token = _free_port(), secrets.token_hex(16)
    env = os.environ | {"JUPYTERLAB_SETTINGS_DIR": str(folder / "settings"), "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
                        "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"), "JUPYTER_CONFIG_DIR": str(folder / "config")}
    log = (folder / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start; log:\n{(folder / 'lab.log').read_text()[-3000:]}")
            time.sleep(1)
        yield base, token, notebook
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(folder / "run", ignore_errors=True)


def test_a_chapter_runs_in_jupyterlab_at_smoke(lab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright

    base, token, notebook = lab
    blocked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})

        def route(r):
            if urlsplit(r.request.url).hostname in ("127.0.0.1", "localhost"):
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        context.set_default_timeout(120_000)
        page = context.new_page()
        page.goto(f"{base}/lab/tree/{CHAPTER}?token={token}", wait_until="load")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        try:  # a reader would press "Select" in the kernel dialog, if JupyterLab asks
            page.locator(".jp-Dialog .jp-mod-accept").click(timeout=15_000)
        except PlaywrightTimeoutError:
            pass
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")  # the kernel is up

        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        code_cells = page.locator(".jp-Notebook .jp-CodeCell").count()
        try:
            page.wait_for_function(
                """n => {
                    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
                        .map(e => e.textContent.trim());
                    return prompts.length === n && prompts.every(t => /\\[\\d+\\]/.test(t));
                }""", arg=code_cells, timeout=RUN_TIMEOUT_S * 1000)
        except PlaywrightTimeoutError:
            prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
            status = page.locator(".jp-Notebook-ExecutionIndicator").get_attribute("data-status")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            pytest.fail(f"not every cell ran within {RUN_TIMEOUT_S} s: kernel {status}; prompts {prompts}; "
                        f"stderr outputs {[e[-300:] for e in errors]}; screenshot {SCREENSHOT}")
        slider = page.locator(".jp-OutputArea .widget-slider").count()
        page.keyboard.press("Control+s")
        page.wait_for_timeout(3000)
        browser.close()

    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(code) for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert all(c.get("execution_count") for c in code), "the saved notebook has cells that did not run"
    assert not errors, f"cells ended in an error: {errors}"
    assert slider, "the q slider (a JupyterLab-only cell) is not on the page"
