"""The book stands alone: what its sources may refer to, how they tag, cite, hide set-up and treat widgets.

Checked on the committed sources (no build needed):

- no reference a reader cannot follow: a specification, design note or reading notes outside the repository,
  or a path into a folder the repository does not contain (notebooks, book, library, tests, scripts,
  benchmarks, README);
- the only tags are the three the introduction defines;
- every bibliography entry is cited with ``{cite}`` somewhere in the book, and every cited key exists;
- in every chapter the parameters cell is folded away (``hide-cell``) and the set-up cell that loads the
  configuration shows its output only (``hide-input``);
- a cell that builds a widget control is removed from the rendered book (``remove-cell``), since a saved
  control cannot redraw its figure without a kernel; the chapter draws a static figure instead;
- no chapter dumps library source with ``inspect.getsource``: components are written in the notebook.

``NOT_YET`` lists the files owned by others that still fail a check, each with the checks it is exempt
from; it is to be emptied as they are fixed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve()

# Phrases that point at material outside the repository. Targeted on purpose: "spec" is also a word of the
# code (inpainter_spec, ConvSpec, importlib specs), so only its prose uses are listed.
OUTSIDE = {
    "a specification outside the book": re.compile(
        r"(?i)\b(?:the|our|this|from the)\s+spec\b|\bspec(?:'s)?\s+(?:\d|section|table|step|of\b|``|`)|\bspec's\b"
        r"|\bas specified\b"),
    "reading notes": re.compile(r"(?i)\breading[- ]notes\b|\bour notes\b"),
    "a design note": re.compile(r"(?i)\bdesign\.md\b"),
    "a path outside the repository": re.compile(r"shared/(?:papers|design|seed)|(?<![\w/.-])papers/\w+\.md"),
}
TAG = re.compile(r"\*\*\[([^\]]+)\]\*\*")
TAGS = {"paper", "official code", "our reconstruction"}
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
CONTROL = re.compile(r"\bwidgets\.(?:interact\w*|\w*Slider|Dropdown|Checkbox|ToggleButtons?|RadioButtons|Select\w*|Text|Button|Play)\b|\bpixel_picker\(")

# files owned by others that still fail a check: {path: checks it is exempt from}; empty it as they are fixed
NOT_YET: dict[str, set[str]] = {}


def _exempt(path: Path, check: str) -> bool:
    return check in NOT_YET.get(path.relative_to(REPO).as_posix(), set())


def _notebooks() -> list[Path]:
    return sorted((REPO / "notebooks").glob("*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _text(path: Path) -> str:
    """What a reader sees of a file: the cells' sources for a notebook (not its metadata), else the file."""
    if path.suffix == ".ipynb":
        return "\n".join(_source(c) for c in _cells(path))
    return path.read_text(errors="replace")


def _scanned() -> list[Path]:
    files = _notebooks() + [REPO / "README.md", REPO / "_config.yml", REPO / "_toc.yml"]
    for folder, patterns in (("book", ("*.md", "*.bib", "*.py", "*.js")), ("inpaintlib", ("*.py", "*.yaml")),
                             ("tests", ("*.py",)), ("scripts", ("*.py", "*.sh")), ("benchmarks", ("*.py",))):
        for pattern in patterns:
            files += [p for p in (REPO / folder).rglob(pattern) if "_build" not in p.parts and "vendor" not in p.parts]
    return sorted({p for p in files if p.is_file() and p.resolve() != THIS})


def test_no_reference_outside_the_repository():
    found = []
    for path in _scanned():
        if _exempt(path, "outside"):
            continue
        for number, line in enumerate(_text(path).splitlines(), 1):
            found += [f"{path.relative_to(REPO)}:{number}: {what}: {line.strip()[:100]}"
                      for what, pattern in OUTSIDE.items() if pattern.search(line)]
    assert not found, "references a reader of the book cannot follow (state the fact and cite the paper or code):\n" + "\n".join(found)


def test_the_exemptions_are_still_needed():
    """An exemption that no longer hides a failure must go (so NOT_YET only shrinks)."""
    stale = []
    for relative, checks in NOT_YET.items():
        path = REPO / relative
        text = _text(path)
        if "outside" in checks and not any(p.search(text) for p in OUTSIDE.values()):
            stale.append(f"{relative}: outside")
        if "tags" in checks and not ({" ".join(t.split()) for t in TAG.findall(text)} - TAGS):
            stale.append(f"{relative}: tags")
        if "getsource" in checks and "getsource" not in text:
            stale.append(f"{relative}: getsource")
        if "widgets" in checks and not _unremoved_controls(path):
            stale.append(f"{relative}: widgets")
        if "set-up" in checks and not _setup_problems(path):
            stale.append(f"{relative}: set-up")
    assert not stale, "remove these from NOT_YET, they pass now: " + ", ".join(stale)


def test_only_the_three_tags_of_the_introduction():
    intro = (REPO / "book" / "intro.md").read_text()
    assert all(f"**[{tag}]**" in intro for tag in TAGS), "the introduction must define the three tags"
    found = []
    for path in _notebooks() + sorted((REPO / "book").glob("*.md")):
        if _exempt(path, "tags"):
            continue
        found += [f"{path.relative_to(REPO)}: **[{tag}]**" for tag in TAG.findall(_text(path)) if " ".join(tag.split()) not in TAGS]
    assert not found, f"tags other than {sorted(TAGS)} (put a file or a citation beside the tag instead):\n" + "\n".join(found)


def test_every_bibliography_entry_is_cited_and_every_citation_exists():
    keys = set(re.findall(r"@\w+\{([^,\s]+),", (REPO / "book" / "references.bib").read_text()))
    cited = set()
    for path in _notebooks() + sorted((REPO / "book").glob("*.md")):
        for group in CITE.findall(_text(path)):
            cited |= {key.strip() for key in group.split(",")}
    assert not cited - keys, f"cited but not in book/references.bib: {sorted(cited - keys)}"
    assert not keys - cited, f"in book/references.bib but cited nowhere: {sorted(keys - cited)}"


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _setup_problems(path: Path) -> list[str]:
    problems = []
    cells = _cells(path)
    parameters = [c for c in cells if "parameters" in _tags(c)]
    if not parameters or not _tags(parameters[0]) & {"hide-cell", "remove-cell"}:
        problems.append("the parameters cell is not folded away (tag hide-cell)")
    setup = [c for c in cells if c["cell_type"] == "code" and "load_config(" in _source(c)]
    if setup and not _tags(setup[0]) & {"hide-input", "hide-cell", "remove-input"}:
        problems.append("the set-up cell (load_config) shows its code (tag hide-input)")
    return problems


def _unremoved_controls(path: Path) -> list[str]:
    return [_source(c).splitlines()[0][:80] for c in _cells(path)
            if c["cell_type"] == "code" and CONTROL.search(_source(c)) and "remove-cell" not in _tags(c)]


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_chapter_hides_its_set_up(path: Path):
    if _exempt(path, "set-up"):
        pytest.skip("in NOT_YET")
    assert not _setup_problems(path), f"{path.name}: " + "; ".join(_setup_problems(path))


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_widget_controls_are_removed_from_the_rendered_book(path: Path):
    if _exempt(path, "widgets"):
        pytest.skip("in NOT_YET")
    assert not _unremoved_controls(path), (
        f"{path.name}: cells that build widget controls must be tagged remove-cell (and the chapter must draw "
        f"a static figure): {_unremoved_controls(path)}")


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_components_are_built_not_dumped(path: Path):
    if _exempt(path, "getsource"):
        pytest.skip("in NOT_YET")
    dumps = [i for i, c in enumerate(_cells(path)) if "getsource" in _source(c)]
    assert not dumps, f"{path.name}: cells {dumps} print library source; write the component in the notebook instead"
