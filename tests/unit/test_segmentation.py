import torch
import torch.nn.functional as F

from inpaintlib.data.scenes import NUM_CLASSES, ScenesDataset
from inpaintlib.segmentation import SceneSegmenter, segmenter_for, semantic_eval, semantic_per_image, semantic_scores


class _Oracle(SceneSegmenter):
    """Returns the true labels (looked up by image) with a chosen region overwritten by class 0."""

    def __init__(self, images, labels, wrong_region=None):
        super().__init__()
        self.images, self.labels, self.wrong = images, labels, wrong_region

    def forward(self, image):
        idx = [int((self.images - im).abs().flatten(1).sum(1).argmin()) for im in image]
        lab = self.labels[idx].clone()
        if self.wrong is not None:
            lab[self.wrong[idx]] = 0
        return F.one_hot(lab, NUM_CLASSES).permute(0, 3, 1, 2).float()


def test_shapes():
    logits = SceneSegmenter()(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, NUM_CLASSES, 32, 32)


def test_scores_are_one_for_a_perfect_segmenter_and_drop_in_the_hole_only():
    data = ScenesDataset(4, 32).materialize()
    masks = torch.zeros(4, 1, 32, 32)
    masks[..., 20:, :] = 1
    perfect = semantic_scores(_Oracle(data["image"], data["labels"]), data["image"], data["labels"], masks)
    assert perfect == {"miou": 1.0, "miou_hole": 1.0}
    wrong = _Oracle(data["image"], data["labels"], wrong_region=masks[:, 0] > 0)
    hurt = semantic_scores(wrong, data["image"], data["labels"], masks)
    assert hurt["miou_hole"] < hurt["miou"] < 1.0


def test_semantic_eval_composes_known_pixels():
    from inpaintlib.evaluate import Benchmark

    bench = Benchmark.scenes(32, per_bucket=1)
    oracle = _Oracle(bench.images, bench.labels)
    copy_truth = iter(bench.images.split(32))
    assert semantic_eval(oracle, lambda x, m: next(copy_truth), bench) == {"miou": 1.0, "miou_hole": 1.0}


def test_segmenter_is_cached_and_learns(tmp_path):
    first = segmenter_for(32, steps=40, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    second = segmenter_for(32, steps=40, cache_dir=tmp_path, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    data = ScenesDataset(16, 32, split="test").materialize()
    scores = semantic_scores(first, data["image"], data["labels"], torch.ones(16, 1, 32, 32))
    assert scores["miou"] > 1.5 / NUM_CLASSES  # clearly better than chance after 40 steps


def test_per_image_hole_accuracy_counts_only_hole_pixels():
    from inpaintlib.evaluate import Benchmark

    bench = Benchmark.scenes(32, per_bucket=1)
    oracle = _Oracle(bench.images, bench.labels)
    accuracy, scores = semantic_per_image(oracle, lambda x, m: bench.images.clone(), bench)
    assert accuracy.shape == (len(bench),) and torch.all(accuracy == 1.0) and scores == {"miou": 1.0, "miou_hole": 1.0}
    hole = bench.masks[:, 0] > 0
    wrong, _ = semantic_per_image(_Oracle(bench.images, bench.labels, wrong_region=hole), lambda x, m: bench.images.clone(), bench)
    expected = ((bench.labels == 0) & hole).flatten(1).sum(1).double() / hole.flatten(1).sum(1)  # class 0 everywhere in the hole
    assert torch.allclose(wrong, expected)
