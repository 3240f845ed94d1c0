"""Every benchmark of the book in one command; writes the markdown page ``book/benchmarks.md``.

Run from the repository root (a script, not a test)::

    python -m benchmarks.run_all --quick                  # CPU, a few minutes
    python -m benchmarks.run_all --device cuda            # a GPU: 128 px models, 256 px scenes, more repeats
    python -m benchmarks.run_all --quick --out /tmp/b.md  # anywhere else

Sections: (1) data pipeline images/s: rendering Scenes at 64/128/256 px and drawing training batches
from an in-memory pool; (2) every ``Method`` subclass found in ``inpaintlib/models``: training and
inference images/s and peak memory (CUDA ``max_memory_allocated``; on CPU the growth of the process's
peak resident set, reset through ``/proc/self/clear_refs``, labelled as such), constructed with its
defaults (a required ``image_size`` gets the benchmark size, a required network argument its own
defaults) and skipped with the reason when that fails; (3) the vectorised attention modules against
their plain-loop references (the ones the tests use) at 32x32 and 64x64 features. The page records
the device, torch version, commit, date and the load average, since timings on a shared machine move.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import platform
import re
import subprocess
import sys
import time
import traceback
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere

import inpaintlib.models  # noqa: E402
from inpaintlib.data.batches import InpaintingBatches, training_masks  # noqa: E402
from inpaintlib.data.scenes import ScenesDataset  # noqa: E402
from inpaintlib.runner import cpu_model  # noqa: E402
from inpaintlib.train import Method, Trainer, count_parameters, resolve_device, seed_everything  # noqa: E402

IMAGE_SIZE_NAMES = ("image_size", "input_size", "size")


# ----------------------------------------------------------------------------------------------
# Timing and memory
# ----------------------------------------------------------------------------------------------


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(function: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Shortest wall time of ``repeats`` calls (synchronising CUDA around each)."""
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        function()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def _proc_status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


class PeakMemory:
    """Peak memory during a block above ``start`` (default: the memory in use when it starts), in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` (tensors only). CPU: the process's peak resident set
    (``VmHWM``, reset to the current RSS by writing 5 to ``/proc/self/clear_refs``) minus the RSS at
    the start; this counts every allocation of the process, allocator caches included, so it is only
    meaningful in a fresh process (freed memory stays in the process and is reused unseen).
    """

    def __init__(self, device: torch.device, start: int | None = None):
        self.device = device
        self.start = start
        self.mib: float | None = None

    @staticmethod
    def label(device: torch.device) -> str:
        return "CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS growth (CPU, whole process)"

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            current = torch.cuda.memory_allocated(self.device)  # bytes
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
                current = _proc_status_kib("VmRSS")  # KiB
            except OSError:
                current = None
        if self.start is None:
            self.start = current
        return self

    def __exit__(self, *exc) -> None:
        if self.start is None:
            return
        if self.device.type == "cuda":
            self.mib = (torch.cuda.max_memory_allocated(self.device) - self.start) / 2**20
        elif (peak := _proc_status_kib("VmHWM")) is not None:
            self.mib = max(peak - self.start, 0) / 1024


# ----------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def provenance(device: torch.device, quick: bool) -> dict[str, str]:
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "device": str(device),
        "device name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "CPU cores visible / torch threads": f"{os.cpu_count()} / {torch.get_num_threads()}",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD") + (" (working tree has uncommitted changes)" if dirty else ""),
        "mode": "--quick" if quick else "full",
    }


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unavailable"
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min)"


# ----------------------------------------------------------------------------------------------
# (1) Data pipeline
# ----------------------------------------------------------------------------------------------


def data_pipeline(sizes: list[int], counts: dict[int, int], batch_size: int, draws: int) -> list[list[str]]:
    """Rows: size, scenes rendered per second, batch draws per second (images/s) from a pool of those scenes."""
    rows = []
    ScenesDataset(16, size=sizes[0], seed=1, split="train").materialize()  # warm-up: loads the texture photos once
    for size in sizes:
        count = counts[size]
        dataset = ScenesDataset(count, size=size, seed=0, split="train")
        start = time.perf_counter()
        pool = dataset.materialize()
        render_s = time.perf_counter() - start
        masks = training_masks(count, size, seed=0)
        batches = InpaintingBatches(pool["image"], pool["labels"], pool["present"], masks, batch_size)
        batches(0)
        start = time.perf_counter()
        for step in range(draws):
            batches(step)
        draw_s = time.perf_counter() - start
        rows.append([f"{size} x {size}", f"{count}", f"{count / render_s:.1f}", f"{batch_size}", f"{draws * batch_size / draw_s:,.0f}"])
    return rows


# ----------------------------------------------------------------------------------------------
# (2) Models
# ----------------------------------------------------------------------------------------------


@dataclass
class _ImportFailure:
    """A model module that did not import, and why."""

    reason: str


def discover_methods() -> list[tuple[str, type[Method] | _ImportFailure]]:
    """``(module name, class)`` of every ``Method`` subclass defined in ``inpaintlib.models.*``."""
    found = []
    for info in sorted(pkgutil.iter_modules(inpaintlib.models.__path__), key=lambda i: i.name):
        name = f"inpaintlib.models.{info.name}"
        try:
            module = importlib.import_module(name)
        except Exception as err:  # a chapter being written may not import yet; report it
            found.append((name, _ImportFailure(f"import failed: {type(err).__name__}: {err}")))
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Method) and cls is not Method and cls.__module__ == name:
                found.append((name, cls))
    return found


def _module_class(hint: object) -> type[nn.Module] | None:
    """The ``nn.Module`` subclass an annotation names, alone or as ``X | None``; else ``None``."""
    candidates = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
    if len(candidates) == 1 and isinstance(candidates[0], type) and issubclass(candidates[0], nn.Module):
        return candidates[0]
    return None


def construct_with_defaults(cls: type[Method], image_size: int) -> Method:
    """``cls`` with its defaults; required ``image_size``-like ints get ``image_size`` and required
    ``nn.Module`` arguments an untrained instance built with their own defaults (weights do not change
    speed). ``Module | None`` arguments keep their default ``None`` unless the class refuses it (SPL's
    teacher): then they get an instance too. Any other required argument raises ``TypeError``."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):  # an annotation that does not resolve: fall back to names only
        hints = {}
    kwargs, optional_networks = {}, {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        network = _module_class(hints.get(name))
        if parameter.default is not inspect.Parameter.empty:
            if network is not None and parameter.default is None:
                optional_networks[name] = network
        elif network is not None:
            kwargs[name] = network()
        elif name in IMAGE_SIZE_NAMES:
            kwargs[name] = image_size
        else:
            raise TypeError(f"required argument {name!r} has no benchmark default")
    try:
        return cls(**kwargs)
    except ValueError:
        if not optional_networks:
            raise
        return cls(**kwargs, **{name: network() for name, network in optional_networks.items()})


def _short_error(err: BaseException) -> str:
    """``Type in function: first line of the message`` (the innermost frame names where it failed)."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" in {frames[-1].name}" if frames else ""
    text = str(err).strip().splitlines()
    if isinstance(err, NotImplementedError) and not text:
        text = ["the method does not implement it (not an inpainting method?)"]
    return f"{type(err).__name__}{where}: {text[0][:140] if text else '(no message)'}"


@dataclass(frozen=True)
class ModelSettings:
    """How a model is benchmarked: image size, batch, warm-up and timed steps, inference repeats, AMP, memory format."""

    image_size: int
    batch_size: int
    warmup: int
    steps: int
    repeats: int
    amp: bool
    channels_last: bool


def benchmark_model(cls: type[Method], device: torch.device, settings: ModelSettings) -> dict:
    """Inference images/s, training images/s and both peaks of memory, in a fresh process.

    Inference comes first (on the untrained model: its speed does not depend on the weights), then
    ``warmup`` + ``steps`` Trainer steps; training images/s counts the timed steps only, with the
    Trainer's own step time (every optimiser of the method; batch drawing excluded). Both peaks are
    measured above the memory in use before the model was built.
    """
    seed_everything(0)
    batches = InpaintingBatches.scenes(settings.image_size, max(2 * settings.batch_size, 16), settings.batch_size, seed=0)
    batch = {k: v.to(device) for k, v in batches(10**6).items()}
    image, mask = batch["image"], batch["mask"]
    if settings.channels_last:
        image, mask = (t.contiguous(memory_format=torch.channels_last) for t in (image, mask))
    with PeakMemory(device) as infer_memory:
        method = construct_with_defaults(cls, settings.image_size).to(device).eval()
        if settings.channels_last:
            method.to(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.amp):
            method.inpaint(image * (1 - mask), mask)  # warm-up
            infer_s = best_seconds(lambda: method.inpaint(image * (1 - mask), mask), settings.repeats, device)
    with PeakMemory(device, start=infer_memory.start) as train_memory:
        trainer = Trainer(method, batches, settings.warmup, device=device, progress=False, amp=settings.amp,
                          channels_last=settings.channels_last, log_every=10**9)
        trainer.fit()
        before = trainer.train_seconds
        trainer.steps = settings.warmup + settings.steps
        trainer.fit()
        _synchronize(device)
        train_s = trainer.train_seconds - before
    return {
        "params": count_parameters(method),
        "train_ips": settings.steps * settings.batch_size / train_s,
        "infer_ips": len(image) / infer_s,
        "train_mib": train_memory.mib,
        "infer_mib": infer_memory.mib,
    }


def _model_worker(target: str, device: torch.device, settings: ModelSettings) -> None:
    """``--model-worker module:Class``: benchmark one method and print one JSON line."""
    module_name, class_name = target.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        result = {"ok": True} | benchmark_model(cls, device, settings)
    except Exception as err:
        traceback.print_exc(limit=3, file=sys.stderr)
        result = {"ok": False, "error": _short_error(err)}
    print(json.dumps(result), flush=True)


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def model_rows(device: torch.device, settings: ModelSettings, timeout_s: float) -> tuple[list[list[str]], list[str]]:
    """One row per discovered method, each measured in its own process (clean memory peaks)."""
    rows, notes = [], []
    for module, cls in discover_methods():
        short = module.rsplit(".", 1)[-1]
        if isinstance(cls, _ImportFailure):
            notes.append(f"`{module}`: {cls.reason}")
            continue
        print(f"  {short}.{cls.__name__} ...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "benchmarks.run_all", "--model-worker", f"{module}:{cls.__name__}",
                   "--device", str(device), "--model-settings", json.dumps(asdict(settings)),
                   "--threads", str(torch.get_num_threads())]
        try:
            done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            notes.append(f"`{short}.{cls.__name__}` skipped: took more than {timeout_s:.0f} s")
            continue
        lines = done.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"ok": False, "error": done.stderr.strip()[-200:]}
        if not result["ok"]:
            notes.append(f"`{short}.{cls.__name__}` skipped: {result['error']}")
            continue
        rows.append([f"`{short}.{cls.__name__}`", f"{result['params'] / 1e6:.2f}", f"{result['train_ips']:,.1f}",
                     f"{result['infer_ips']:,.1f}", _mib(result["train_mib"]), _mib(result["infer_mib"])])
    return rows, notes


# ----------------------------------------------------------------------------------------------
# (3) Attention modules against their loop references
# ----------------------------------------------------------------------------------------------


def _load_test_module(name: str) -> ModuleType:
    """Import ``tests/unit/<name>.py`` (where the loop references of some modules live)."""
    path = REPO_ROOT / "tests" / "unit" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class AttentionCase:
    """One module at one size: ``fast()`` and ``loop()`` return outputs comparable with ``difference``."""

    module: str
    shape: str
    fast: Callable[[], torch.Tensor]
    loop: Callable[[], np.ndarray | torch.Tensor]


def _max_difference(fast: torch.Tensor, loop: np.ndarray | torch.Tensor) -> float:
    loop_t = torch.as_tensor(loop, dtype=torch.float64)
    return float((fast.detach().cpu().double() - loop_t).abs().max())


def attention_cases(size: int, channels: int, batch: int, device: torch.device) -> list[AttentionCase]:
    """The attention modules of the book at a ``size x size`` feature map (``channels``, ``batch``)."""
    from benchmarks.bench_attention import centred_hole, load_reference
    from benchmarks.bench_csa import official_center_mask
    from benchmarks.csa_reference import csa_reference
    from benchmarks.lbp_reference import spatial_attention_loop
    from inpaintlib.attention.contextual import contextual_attention
    from inpaintlib.attention.csa import coherent_semantic_attention
    from inpaintlib.attention.lbp_spatial import lbp_spatial_attention

    gen = torch.Generator().manual_seed(size * 1000 + channels)
    shape = f"({batch}, {channels}, {size}, {size})"
    features = torch.randn(batch, channels, size, size, generator=gen)
    hole = centred_hole(batch, size)
    contextual_reference = load_reference().reference_contextual_attention
    uniform = torch.rand(batch, channels, size, size, generator=gen)
    csa_mask = official_center_mask(size, batch, torch.device("cpu"))
    generated = torch.randn(batch, channels, size, size, generator=gen).relu()
    known = torch.randn(batch, channels, size, size, generator=gen).relu()
    image_hole = centred_hole(batch, 8 * size)  # the LBP attention takes the image-size mask
    on = lambda t: t.to(device)  # noqa: E731
    cases = [
        AttentionCase("contextual attention (DeepFill v1)", shape,
                      lambda: contextual_attention(on(features), on(features), on(hole)),
                      lambda: contextual_reference(features.numpy(), features.numpy(), hole.numpy())[0]),
        AttentionCase("CSA (coherent semantic attention)", shape,
                      lambda: coherent_semantic_attention(on(uniform), on(csa_mask)),
                      lambda: csa_reference(uniform, csa_mask).out),
        AttentionCase("LBP spatial attention", shape,
                      lambda: lbp_spatial_attention(on(generated), on(known), on(image_hole)),
                      lambda: spatial_attention_loop(generated, known, image_hole)[0]),
    ]
    if importlib.util.find_spec("inpaintlib.attention.semantic") is not None:
        from inpaintlib.attention.semantic import attention_transfer, semantic_contextual_attention

        semantic_tests = _load_test_module("test_semantic_attention")
        probs = torch.randn(batch, 7, size, size, generator=gen).mul(2).softmax(1)
        values = torch.randn(batch, channels, 2 * size, 2 * size, generator=gen)
        value_hole = centred_hole(batch, 2 * size)
        attention = torch.randn(batch, size * size, size * size, generator=gen).softmax(-1)
        cases += [
            AttentionCase("SWAP semantic-gated attention (hard gate)", shape,
                          lambda: semantic_contextual_attention(on(features), on(hole), on(probs), gate="hard").attention,
                          lambda: semantic_tests.reference_attention(features.double().numpy(), hole.double().numpy(),
                                                                     probs.double().numpy(), "hard")[0]),
            AttentionCase("SACA attention transfer (4x4 stride-2 patches)", f"{shape} -> values at {2 * size} x {2 * size}",
                          lambda: attention_transfer(on(attention), on(values), on(value_hole)),
                          lambda: semantic_tests.reference_transfer(attention.double().numpy(), values.double().numpy(),
                                                                    value_hole.double().numpy())),
        ]
    return cases


def attention_rows(sizes: list[int], channels: int, batch: int, device: torch.device, repeats: int,
                   loop_budget_s: float) -> list[list[str]]:
    """Rows: module, features, vectorised ms, loop s, speed-up, max |diff|.

    A loop reference is run at a larger size only when (size / smallest size)^4 times its time at the
    smallest size (its cost grows with the square of the number of positions) stays under ``loop_budget_s``.
    """
    rows = []
    loop_at_smallest: dict[str, float] = {}
    for size in sizes:
        for case in attention_cases(size, channels, batch, device):
            print(f"  {case.module} at {size} x {size} ...", file=sys.stderr, flush=True)
            with torch.no_grad():
                output = case.fast()  # warm-up
                fast_s = best_seconds(case.fast, repeats, device)
            estimate = loop_at_smallest.get(case.module, 0.0) * (size / sizes[0]) ** 4
            if case.module in loop_at_smallest and estimate > loop_budget_s:
                rows.append([case.module, case.shape, f"{fast_s * 1e3:.2f}", f"not run (about {estimate:,.0f} s)", "", ""])
                continue
            start = time.perf_counter()
            expected = case.loop()
            loop_s = time.perf_counter() - start
            loop_at_smallest.setdefault(case.module, loop_s)
            rows.append([case.module, case.shape, f"{fast_s * 1e3:.2f}", f"{loop_s:.2f}", f"{loop_s / fast_s:,.0f}x",
                         f"{_max_difference(output, expected):.1e}"])
    return rows


# ----------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (CPU: a few minutes)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "book" / "benchmarks.md")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("data", "models", "attention"))
    parser.add_argument("--model-timeout", type=float, default=900.0, help="seconds per model before it is skipped")
    parser.add_argument("--loop-budget", type=float, default=None,
                        help="seconds a loop reference may be predicted to take at 64 x 64 (default 120 --quick, else 1800)")
    parser.add_argument("--model-worker", default=None, help=argparse.SUPPRESS)  # internal: module:Class
    parser.add_argument("--model-settings", default=None, help=argparse.SUPPRESS)  # internal: JSON ModelSettings
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.model_worker:
        _model_worker(args.model_worker, device, ModelSettings(**json.loads(args.model_settings)))
        return
    gpu = device.type == "cuda"
    quick = args.quick
    settings = ModelSettings(
        image_size=128 if gpu and not quick else 64,
        batch_size=16 if gpu and not quick else 4 if quick else 8,
        warmup=1 if quick else 3,
        steps=2 if quick else 10,
        repeats=2 if quick else 5,
        amp=gpu,
        channels_last=gpu,
    )
    info = provenance(device, quick)
    load_start = load_average()
    started = time.time()
    sections = []

    if "data" not in args.skip:
        print("data pipeline ...", file=sys.stderr, flush=True)
        counts = {64: 32, 128: 16, 256: 8} if quick else {64: 256, 128: 128, 256: 64}
        rows = data_pipeline([64, 128, 256], counts, batch_size=16, draws=20 if quick else 200)
        sections.append("## Data pipeline (CPU work, whatever the device)\n\n"
                        "Rendering procedural Scenes (image, exact labels, multi-labels) and drawing a training batch "
                        "(random images and masks from in-memory pools, flips) with `InpaintingBatches`.\n\n"
                        + markdown_table(["size", "scenes rendered", "render images/s", "batch", "batch draw images/s"], rows))

    if "models" not in args.skip:
        print("models ...", file=sys.stderr, flush=True)
        rows, notes = model_rows(device, settings, args.model_timeout)
        text = (f"## Models\n\nEvery `Method` in `inpaintlib/models`, built with its defaults, each in a fresh process, on "
                f"{settings.image_size} x {settings.image_size} Scenes, batch {settings.batch_size}. Training: "
                f"{settings.steps} Trainer steps after {settings.warmup} warm-up step(s), timed with the Trainer's "
                f"step time (every optimiser of the method; drawing the batch excluded). Inference: `inpaint` under "
                f"`no_grad`, best of {settings.repeats}. AMP (bf16): {'on' if settings.amp else 'off'}; channels-last: "
                f"{'on' if settings.channels_last else 'off'}. Memory: {PeakMemory.label(device)} in MiB above the "
                f"process before the model was built (weights included); training peak includes optimiser states.\n\n"
                + markdown_table(["method", "parameters (M, all networks)", "train images/s", "inference images/s",
                                  "train peak (MiB)", "inference peak (MiB)"], rows))
        if notes:
            text += "\n\nNot measured:\n\n" + "\n".join(f"- {note}" for note in notes)
        sections.append(text)

    if "attention" not in args.skip:
        print("attention ...", file=sys.stderr, flush=True)
        channels, batch = (16, 1) if quick else (64, 1)
        rows = attention_rows([32, 64], channels, batch, device, repeats=3 if quick else 10,
                              loop_budget_s=args.loop_budget or (120.0 if quick else 1800.0))
        sections.append(
            "## Attention modules against their loop references\n\n"
            "Vectorised module (best of several calls, forward only) against the plain-loop reference the unit "
            "tests compare it with (one call, CPU, float64 where the reference is numpy). A centred square hole "
            "covers a quarter of the map (CSA: the official centre mask brought to the feature level; LBP: "
            "an image 8x the feature map). A loop reference is skipped at 64 x 64 when its time at 32 x 32 "
            "predicts (x16, the square of the positions) more than the budget; the estimate is shown.\n\n"
            + markdown_table(["module", "features (B, C, H, W)", "vectorised (ms)", "loop reference (s)", "speed-up",
                              "max abs diff"], rows))

    info["load average at start"] = load_start
    info["load average at end"] = load_average()
    info["wall time"] = f"{time.time() - started:.0f} s"
    page = (
        "# Benchmarks\n\n"
        f"Generated by `python -m benchmarks.run_all {' '.join(sys.argv[1:] if argv is None else argv)}`"
        "; do not edit by hand. "
        "Timings depend on the machine and on what else runs on it: the load average below says how busy "
        "the machine was (a load above the number of cores means the benchmark shared them).\n\n"
        + markdown_table(["", ""], [[k, v] for k, v in info.items()])
        + "\n\n" + "\n\n".join(sections) + "\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(page)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
