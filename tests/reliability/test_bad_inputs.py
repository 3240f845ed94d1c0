"""Bad input across the library, the runner and the CLI: each case gets one clear error naming the problem.

Every case is ``(id, callable, exception type, regex the message must match)``. The message must be a
single line, so a user sees what is wrong without reading a traceback. Documented non-error
behaviours (all-hole and no-hole masks, which are legitimate inputs) are tested at the bottom.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from inpaintlib.__main__ import main
from inpaintlib.attention.contextual import contextual_attention
from inpaintlib.attention.csa import coherent_semantic_attention, feature_mask
from inpaintlib.attention.lbp_spatial import lbp_spatial_attention
from inpaintlib.classical import biharmonic_inpaint
from inpaintlib.config import ConfigError, load_config, validate_parameters
from inpaintlib.data.batches import InpaintingBatches
from inpaintlib.data.folders import FolderDatasetError, ImageFolderDataset, SegmentationFolderDataset, open_dataset
from inpaintlib.data.scenes import ScenesDataset
from inpaintlib.evaluate import Benchmark, evaluate
from inpaintlib.features import HEDVGG16Features, HEDWeightsError
from inpaintlib.lbp import local_binary_pattern
from inpaintlib.masks import check_mask, load_eval_masks
from inpaintlib.metrics import confusion_matrix, image_metrics
from inpaintlib.models.unet import UNetInpainter, UNetMethod
from inpaintlib.runner import run
from inpaintlib.train import CheckpointError, Trainer, load_weights, resolve_device

IMG = torch.rand(2, 3, 32, 32)
MASK = torch.zeros(2, 1, 32, 32)
MASK[..., 8:20, 8:20] = 1
UNET = UNetInpainter((8, 16))


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# Cases that need no files: (id, thunk, exception, message regex)
CASES = [
    # images
    ("image 3-D", lambda: UNET(IMG[0], MASK), ValueError, r"image must have shape \(B, 3, H, W\)"),
    ("image 1 channel", lambda: UNET(IMG[:, :1], MASK), ValueError, r"image must have shape \(B, 3, H, W\)"),
    ("image 4 channels", lambda: UNET(torch.rand(2, 4, 32, 32), MASK), ValueError, r"\(B, 3, H, W\) \(RGB\)"),
    ("image uint8", lambda: UNET((IMG * 255).byte(), MASK), ValueError, "must be a float tensor in \\[0, 1\\]"),
    ("image 0-255 floats", lambda: UNET(IMG * 255, MASK), ValueError, r"values must lie in \[0, 1\]"),
    ("image with NaN", lambda: biharmonic_inpaint(torch.full((1, 3, 8, 8), float("nan")), MASK[:1, :, :8, :8]), ValueError, "NaN"),
    ("image numpy", lambda: UNET(IMG.numpy(), MASK), ValueError, "must be a torch.Tensor"),
    ("size not divisible by stride", lambda: UNetInpainter((8, 16, 32))(torch.rand(1, 3, 36, 36), torch.zeros(1, 1, 36, 36)), ValueError, "not divisible by the U-Net stride 8"),
    # masks
    ("soft mask", lambda: UNET(IMG, MASK * 0.5), ValueError, "exactly 0 .known. or 1 .missing."),
    ("mask 0-255", lambda: check_mask(MASK * 255), ValueError, "exactly 0"),
    ("mask 3 channels", lambda: UNET(IMG, MASK.expand(2, 3, 32, 32)), ValueError, r"mask must have shape \(B, 1, H, W\)"),
    ("mask 3-D", lambda: UNET(IMG, MASK[:, 0]), ValueError, r"mask must have shape \(B, 1, H, W\)"),
    ("mask bool", lambda: UNET(IMG, MASK.bool()), ValueError, "must be a float tensor"),
    ("mask other size", lambda: UNET(IMG, MASK[..., :16, :16]), ValueError, "does not match image shape"),
    ("mask other batch", lambda: UNET(IMG, MASK[:1]), ValueError, "does not match image shape"),
    ("metrics soft mask", lambda: image_metrics(IMG, IMG, MASK * 0.3), ValueError, "exactly 0"),
    # labels
    ("labels outside class range", lambda: confusion_matrix(torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 9, 2]), 7), ValueError, r"ids outside \[0, 7\).*\[9\]"),
    ("labels as floats", lambda: confusion_matrix(torch.zeros(4), torch.zeros(4, dtype=torch.long), 7), ValueError, "integer tensor"),
    # attention modules
    ("contextual f/b mismatch", lambda: contextual_attention(torch.rand(1, 8, 16, 16), torch.rand(1, 8, 8, 8)), ValueError, "same shape"),
    ("contextual soft mask", lambda: contextual_attention(torch.rand(1, 8, 16, 16), torch.rand(1, 8, 16, 16), torch.full((1, 1, 16, 16), 0.5)), ValueError, r"mask values must be in \{0, 1\}"),
    ("contextual odd size for rate", lambda: contextual_attention(torch.rand(1, 8, 15, 15), torch.rand(1, 8, 15, 15)), ValueError, "divisible by rate"),
    ("CSA all-hole map", lambda: coherent_semantic_attention(torch.rand(1, 8, 8, 8), torch.ones(1, 1, 8, 8)), ValueError, "all hole"),
    ("CSA mask too small", lambda: feature_mask(torch.zeros(1, 1, 4, 4), levels=3), ValueError, "too small"),
    ("LBP intensities not levels", lambda: local_binary_pattern(torch.rand(1, 1, 8, 8)), ValueError, "uint8|levels"),
    ("LBP unknown border", lambda: local_binary_pattern(torch.zeros(1, 1, 8, 8), border="wrap"), ValueError, "border"),
    ("LBP attention top_t too big", lambda: lbp_spatial_attention(torch.rand(1, 4, 4, 4), torch.rand(1, 4, 4, 4), torch.cat([torch.ones(1, 1, 4, 3), torch.zeros(1, 1, 4, 1)], -1).reshape(1, 1, 4, 4), top_t=8), ValueError, "top_t|known"),
    # data
    ("scenes length 0", lambda: ScenesDataset(0), ValueError, "length >= 1"),
    ("scenes size 8", lambda: ScenesDataset(4, size=8), ValueError, "size >= 16"),
    ("scenes unknown split", lambda: ScenesDataset(4, split="holdout"), ValueError, "unknown split"),
    ("scenes index out of range", lambda: ScenesDataset(2)[5], IndexError, "out of range"),
    ("batch size 0", lambda: InpaintingBatches(IMG, torch.zeros(2, 32, 32, dtype=torch.long), torch.zeros(2, 7), MASK, 0), ValueError, "batch_size must be >= 1"),
    ("benchmark unknown masks", lambda: Benchmark.scenes(32, 1, masks="random"), ValueError, "unknown benchmark masks"),
    ("open_dataset unknown name", lambda: open_dataset("imagenet", None, 32, "train"), ValueError, "imagenet"),
    ("folder dataset root None", lambda: open_dataset("places2", None, 32, "train"), ValueError, "root"),
    # models, training
    ("unknown norm", lambda: UNetInpainter((8, 16), norm="layer"), ValueError, "unknown norm 'layer'"),
    ("negative steps", lambda: Trainer(UNetMethod((8, 16)), lambda s: {}, -1, progress=False), ValueError, "steps must be >= 0"),
    ("cuda without cuda", lambda: resolve_device("cuda") if not torch.cuda.is_available() else (_ for _ in ()).throw(ValueError("no CUDA (skipped: has cuda)")), ValueError, "no CUDA"),
    ("inpaint returns wrong shape", lambda: evaluate(lambda x, m: x[:, :, :8], Benchmark.scenes(32, 1), progress=False), ValueError, "inpaint returned shape"),
    ("inpaint returns NaN", lambda: evaluate(lambda x, m: x * float("nan"), Benchmark.scenes(32, 1), progress=False), ValueError, "NaN or infinite"),
    # configuration
    ("unknown preset", lambda: validate_parameters("01_unet_baseline", "laptop", {}), ConfigError, "unknown preset 'laptop'"),
    ("unknown parameter", lambda: validate_parameters("01_unet_baseline", "cpu", {"epochs": 3}), ConfigError, "unknown parameter 'epochs'"),
    ("float for int", lambda: validate_parameters("01_unet_baseline", "cpu", {"steps": 2.5}), ConfigError, "'steps' must be like"),
    ("string for float", lambda: validate_parameters("01_unet_baseline", "cpu", {"lr": "fast"}), ConfigError, "'lr' must be like"),
    ("list of wrong items", lambda: validate_parameters("01_unet_baseline", "cpu", {"channels": [8.5, 16]}), ConfigError, "'channels' must be like"),
    ("run_dir not a string", lambda: validate_parameters("01_unet_baseline", "cpu", {"run_dir": 5}), ConfigError, "'run_dir' must be str or None"),
    ("notebook without presets", lambda: load_config("99_unknown", "cpu"), ConfigError, "no presets file"),
    ("missing notebook", lambda: run("notebooks/99_missing.ipynb", "smoke"), ConfigError, "notebook not found"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(case):
    _, thunk, exc, pattern = case
    with pytest.raises(exc, match=pattern) as err:
        thunk()
    assert "\n" not in str(err.value).strip(), "the message must be one line"


def test_there_are_at_least_forty_cases():
    assert len(CASES) + len(FILE_CASES) >= 40


# Cases that need files on disk: (id, builder(tmp_path) -> thunk, exception, regex)
def _empty_folder(tmp):
    (tmp / "empty").mkdir()
    return lambda: ImageFolderDataset(tmp / "empty", 32, layout="flat")


def _missing_folder(tmp):
    return lambda: ImageFolderDataset(tmp / "nope", 32, layout="flat")


def _corrupt_image(tmp):
    _write(tmp / "photos" / "a.png", b"this is not a png")
    ds = ImageFolderDataset(tmp / "photos", 32, layout="flat")
    return lambda: ds[0]


def _label_out_of_range(tmp):
    root = tmp / "ADEChallengeData2016"
    _png(root / "images" / "training" / "x.jpg", np.zeros((8, 8, 3), np.uint8))
    _png(root / "annotations" / "training" / "x.png", np.full((8, 8), 200, np.uint8))
    ds = SegmentationFolderDataset(tmp, 8, layout="ade20k")
    return lambda: ds[0]


def _missing_label(tmp):
    root = tmp / "ADEChallengeData2016"
    _png(root / "images" / "training" / "y.jpg", np.zeros((8, 8, 3), np.uint8))
    (root / "annotations" / "training").mkdir(parents=True)
    return lambda: SegmentationFolderDataset(tmp, 8, layout="ade20k")


def _corrupt_checkpoint(tmp):
    path = _write(tmp / "g.safetensors", b"\x00" * 64)
    return lambda: load_weights(UNetInpainter((8, 16)), path)


def _mismatched_checkpoint(tmp):
    from inpaintlib.train import save_weights

    save_weights(UNetInpainter((8, 16)), tmp / "g.safetensors")
    return lambda: load_weights(UNetInpainter((8, 16, 32)), tmp / "g.safetensors")


def _missing_checkpoint(tmp):
    return lambda: load_weights(UNetInpainter((8, 16)), tmp / "none.safetensors")


def _corrupt_hed_weights(tmp):
    path = _write(tmp / "hed.h5", b"random bytes, not HDF5")
    return lambda: HEDVGG16Features(weights=path)


def _missing_eval_masks(tmp):
    return lambda: load_eval_masks(tmp / "masks.npz")


def _runs_dir_is_a_file(tmp):
    blocker = _write(tmp / "runs", b"a file where the run folder should go")
    return lambda: run("notebooks/00_data_and_masks.ipynb", "smoke", runs_dir=blocker)


FILE_CASES = [
    ("folder missing", _missing_folder, FolderDatasetError, "nope"),
    ("folder empty", _empty_folder, FolderDatasetError, "no images"),
    ("image corrupt", _corrupt_image, FolderDatasetError, "a.png"),
    ("label out of range", _label_out_of_range, FolderDatasetError, "200|range"),
    ("label file missing", _missing_label, FolderDatasetError, "y"),
    ("checkpoint corrupt", _corrupt_checkpoint, CheckpointError, "not a readable safetensors file"),
    ("checkpoint mismatched", _mismatched_checkpoint, CheckpointError, "does not match UNetInpainter"),
    ("checkpoint missing", _missing_checkpoint, CheckpointError, "not found"),
    ("HED weights corrupt", _corrupt_hed_weights, HEDWeightsError, "hed.h5"),
    ("eval masks missing", _missing_eval_masks, FileNotFoundError, "make_eval_masks"),
    ("run folder blocked by a file", _runs_dir_is_a_file, ConfigError, "cannot create run directory"),
]


@pytest.mark.parametrize("case", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_files_give_one_clear_line(case, tmp_path):
    _, build, exc, pattern = case
    thunk = build(tmp_path)
    with pytest.raises(exc, match=pattern) as err:
        thunk()
    assert "\n" not in str(err.value).strip()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "notebooks/01_unet_baseline.ipynb", "-p", "channels", "[8,"], "cannot parse value"),
        (["run", "notebooks/01_unet_baseline.ipynb", "-p", "seed", "one"], "'seed' must be int"),
        (["run", "notebooks/01_unet_baseline.ipynb", "--preset", "GPU"], "unknown preset 'GPU'"),
    ],
)
def test_cli_one_line_errors(argv, message, capsys, tmp_path):
    assert main(argv + ["--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_all_hole_and_no_hole_masks_are_handled():
    """Documented behaviour: an all-hole image is inpainted from nothing; a no-hole image is copied.

    In-hole metrics of an image without a hole are undefined; they come out as perfect (PSNR_MAX,
    L1 0), which the benchmark never meets because its smallest bucket holes are above 0.5 %.
    """
    full, empty = torch.ones(2, 1, 32, 32), torch.zeros(2, 1, 32, 32)
    out = UNET(IMG, full)
    assert out.shape == IMG.shape and torch.isfinite(out).all()
    assert torch.equal(biharmonic_inpaint(IMG, empty), IMG)
    m = image_metrics(IMG, IMG, empty)
    assert torch.all(m["l1_hole"] == 0)
