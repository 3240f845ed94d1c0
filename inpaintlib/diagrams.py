"""Architecture diagrams drawn from a model's own modules, so a picture cannot drift from the code.

:func:`trace_blocks` runs the model once on example inputs with forward hooks and records, in call
order, every module called directly by the model's ``forward`` (or by a module listed in ``expand``):
its name, class, and the channels and spatial size of its output. :func:`draw_architecture` draws
those records as boxes, one row per stage (e.g. a rough and a refinement network), the box height
proportional to the spatial size (so encoders step down and decoders step up, and several output
scales show as steps), the number in the box the output channels, and the paper's module in colour
with its name above it. Nothing is typed by hand: change a layer and the diagram changes with it.

A block whose own call is not drawn (it sits inside a module that is not expanded) still marks its
drawn ancestor: a decoder block holding the attention layer is coloured and labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from torch import nn

__all__ = ["Block", "trace_blocks", "draw_architecture"]

HIGHLIGHT_COLOURS = ("#e8743b", "#c0392b", "#8e44ad", "#16a085", "#d4a017")
PLAIN_FACE = "#cfd8e6"


@dataclass(frozen=True)
class Block:
    """One drawn call: ``name`` the module's qualified name (``"refine.down.2"``), ``kind`` its class,
    ``row`` the row it is drawn in, ``channels`` / ``height`` / ``width`` of its first 4-D output, and
    ``highlight`` the label of the paper's module it is or contains (None when plain)."""

    name: str
    kind: str
    row: str
    channels: int
    height: int
    width: int
    highlight: str | None = None


def _first_map(output: Any) -> torch.Tensor | None:
    """The first 4-D tensor in a module's output (a tensor, tuple, NamedTuple, list or dict), or None."""
    if isinstance(output, torch.Tensor):
        return output if output.ndim == 4 else None
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_map(item)
            if found is not None:
                return found
    return None


def _label_of(module: nn.Module, highlight: Mapping[type | str, str]) -> str | None:
    for key, label in highlight.items():
        if (isinstance(key, type) and isinstance(module, key)) or key == type(module).__name__:
            return label
    return None


def trace_blocks(
    model: nn.Module,
    inputs: Sequence[Any],
    *,
    expand: Sequence[str] = (),
    rows: Mapping[str, str] | None = None,
    highlight: Mapping[type | str, str] | None = None,
    main_row: str | None = None,
    skip_parameterless: bool = True,
) -> list[Block]:
    """Run ``model(*inputs)`` once (no gradient) and return the drawn calls in call order.

    Drawn: every module called directly by ``model.forward``, and every module called directly by a
    module named in ``expand`` (qualified names, e.g. ``"rough"``), except the expanded ones themselves
    and, with ``skip_parameterless``, modules without parameters (activations, padding, pixel shuffle).
    A module whose class is a key of ``highlight`` (a class or a class name) is drawn but never
    expanded; its label goes to the block, or to the drawn ancestor that called it. ``rows`` maps
    expanded names to row titles: their blocks (and those of modules expanded inside them) get their
    own row; every other block is drawn in ``main_row`` (default: the model's class name). Calls whose
    output holds no 4-D tensor are skipped.
    """
    highlight = dict(highlight or {})
    rows = dict(rows or {})
    expand = set(expand)
    main_row = main_row or type(model).__name__
    names = {module: name for name, module in model.named_modules()}
    unknown = sorted((expand | set(rows)) - set(names.values()))
    if unknown:
        raise ValueError(f"expand/rows name modules the model does not have: {unknown}")

    stack: list[str] = []  # names of the modules whose forward is running, outermost first
    calls: list[dict] = []  # one per call, in the order the calls started
    open_calls: list[int] = []

    def pre_hook(module, _args):
        name = names[module]
        caller = stack[-1] if stack else None
        calls.append({"name": name, "caller": caller, "module": module, "output": None, "labels": []})
        open_calls.append(len(calls) - 1)
        stack.append(name)

    def post_hook(module, _args, output):
        index = open_calls.pop()
        stack.pop()
        calls[index]["output"] = _first_map(output)

    handles = []
    for module in names:
        if module is model:
            continue
        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(post_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()

    def drawn(call: dict) -> bool:
        if call["name"] in expand and _label_of(call["module"], highlight) is None:
            return False
        caller = call["caller"]
        while caller is not None and caller in expand:
            parent = next(c for c in calls if c["name"] == caller)
            if _label_of(parent["module"], highlight) is not None:
                return False
            caller = parent["caller"]
        return caller is None

    def row_of(call: dict) -> str:
        if call["name"] in rows:
            return rows[call["name"]]
        caller, row = call["caller"], main_row
        while caller is not None:
            if caller in rows and row == main_row:
                row = rows[caller]
            caller = next(c for c in calls if c["name"] == caller)["caller"]
        return row

    by_name_drawn = {}
    for index, call in enumerate(calls):
        plain = _label_of(call["module"], highlight) is None
        if drawn(call) and not (skip_parameterless and plain and next(call["module"].parameters(), None) is None):
            by_name_drawn[index] = call
    # labels of highlighted calls go to themselves or to their nearest drawn ancestor call
    for index, call in enumerate(calls):
        label = _label_of(call["module"], highlight)
        if label is None:
            continue
        target, caller = index, call["caller"]
        while target not in by_name_drawn and caller is not None:
            target = max(i for i in range(target) if calls[i]["name"] == caller)
            caller = calls[target]["caller"]
        if target in by_name_drawn and label not in calls[target]["labels"]:
            calls[target]["labels"].append(label)

    blocks = []
    for index, call in by_name_drawn.items():
        out = call["output"]
        if out is None:
            continue
        blocks.append(Block(call["name"], type(call["module"]).__name__, row_of(call), int(out.shape[1]),
                            int(out.shape[-2]), int(out.shape[-1]), " + ".join(call["labels"]) or None))
    return blocks


def _short_name(name: str, expanded: set[str]) -> str:
    """``refine.down.2`` -> ``down.2`` when ``refine`` is expanded: the part below the nearest expanded module."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:cut]) in expanded:
            if parts[cut:][0].isdigit():  # coarse.3, not 3
                cut -= 1
            return ".".join(parts[cut:])
    return name


def draw_architecture(
    model: nn.Module,
    inputs: Sequence[Any],
    *,
    expand: Sequence[str] = (),
    rows: Mapping[str, str] | None = None,
    highlight: Mapping[type | str, str] | None = None,
    main_row: str | None = None,
    skip_parameterless: bool = True,
    title: str | None = None,
    fontsize: float = 9.0,
):
    """Draw the blocks of :func:`trace_blocks` (same arguments) as a matplotlib figure; returns it.

    One row of boxes per stage, in call order from left to right. Box height: the output's spatial
    side relative to the largest in the model; number in the box: output channels; name under the box:
    the attribute path below the expanded module; the paper's modules filled in colour, their label
    above. Every text is at least ``fontsize - 1`` points.
    """
    blocks = trace_blocks(model, inputs, expand=expand, rows=rows, highlight=highlight, main_row=main_row,
                          skip_parameterless=skip_parameterless)
    if not blocks:
        raise ValueError("the model called no submodule with a 4-D output: nothing to draw")
    row_names = list(dict.fromkeys(b.row for b in blocks))
    per_row = {r: [b for b in blocks if b.row == r] for r in row_names}
    longest = max(len(v) for v in per_row.values())
    tallest = max(max(b.height, b.width) for b in blocks)
    labels = list(dict.fromkeys(b.highlight for b in blocks if b.highlight))
    colour_of = {label: HIGHLIGHT_COLOURS[i % len(HIGHLIGHT_COLOURS)] for i, label in enumerate(labels)}
    expanded = set(expand)

    step, box = 1.0, 0.78  # horizontal pitch and box width, in data units
    row_gap = 3.5  # vertical distance between rows: box (<= 1), label above, names below
    fig_width = min(14.0, max(6.0, 0.42 * longest + 1.8))
    fig, ax = plt.subplots(figsize=(fig_width, 1.75 * len(row_names) + 0.8))
    for r, row in enumerate(row_names):
        base = -r * row_gap
        ax.text(-0.7, base + 0.5, row, ha="right", va="center", fontsize=fontsize + 1, fontweight="bold")
        for i, b in enumerate(per_row[row]):
            height = 0.15 + 0.85 * max(b.height, b.width) / tallest
            x, y = i * step, base + 0.5 - height / 2
            face = colour_of[b.highlight] if b.highlight else PLAIN_FACE
            ax.add_patch(plt.Rectangle((x, y), box, height, facecolor=face, edgecolor="#34495e", lw=0.8))
            ax.text(x + box / 2, base + 0.5, str(b.channels), ha="center", va="center", fontsize=fontsize - 1,
                    rotation=90 if len(str(b.channels)) > 3 else 0)
            ax.text(x + box / 2, base - 0.08, _short_name(b.name, expanded), ha="right", va="top",
                    fontsize=fontsize - 1, rotation=60, rotation_mode="anchor")
        run_start = 0  # one label over each run of neighbouring boxes of the same module kind
        for i, b in enumerate(per_row[row] + [None]):
            if b is not None and i and b.highlight == per_row[row][i - 1].highlight:
                continue
            first = per_row[row][run_start] if run_start < len(per_row[row]) else None
            if first is not None and first.highlight:
                centre = (run_start + i - 1) / 2 * step + box / 2
                ax.text(centre, base + 1.08, first.highlight, ha="center", va="bottom", fontsize=fontsize,
                        fontweight="bold", color=colour_of[first.highlight])
            run_start = i
    ax.set_xlim(-0.8 - 0.12 * max(len(r) for r in row_names), longest * step + 0.2)
    ax.set_ylim(-(len(row_names) - 1) * row_gap - 1.9, 1.6)
    ax.axis("off")
    note = f"height: spatial size (tallest {tallest} px) | number: channels | left to right: call order"
    ax.set_title((title + "\n" if title else "") + note, fontsize=fontsize, loc="left")
    fig.tight_layout()
    return fig
