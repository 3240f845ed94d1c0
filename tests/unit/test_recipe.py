"""Tests of inpaintlib.recipe and of the Trainer under a recipe: betas, learning-rate schedule, EMA, budget."""

import math

import pytest
import torch
from torch import nn

from inpaintlib.data.batches import InpaintingBatches
from inpaintlib.models.unet import UNetMethod
from inpaintlib.recipe import RECIPES, Recipe, get_recipe
from inpaintlib.train import CheckpointError, Method, Trainer, seed_everything


@pytest.fixture(scope="module")
def batches():
    return InpaintingBatches.scenes(32, 24, 4, seed=3)


def test_lr_factor_warmup_then_cosine_to_zero():
    r = Recipe("t", warmup=0.1, cosine_decay=True)
    assert r.warmup_steps(100) == 10
    assert [r.lr_factor(t, 100) for t in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert r.lr_factor(10, 100) == pytest.approx(1.0)
    assert r.lr_factor(55, 100) == pytest.approx(0.5)
    assert r.lr_factor(99, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert Recipe("c").lr_factor(50, 100) == 1.0


def test_ema_factor_warms_up_and_caps():
    r = Recipe("t", ema_decay=0.999)
    assert r.ema_factor(0) == pytest.approx(0.1)
    assert r.ema_factor(400) == pytest.approx(401 / 410)
    assert r.ema_factor(10**6) == 0.999


def test_recipes_and_errors():
    assert get_recipe("book").betas == (0.9, 0.999) and not get_recipe("book").adversarial
    assert get_recipe("paper").betas is None and get_recipe("paper").adversarial
    assert RECIPES["book"].adversarial_weight(0.1) == 0.0 and RECIPES["paper"].adversarial_weight(0.1) == 0.1
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("fast")
    with pytest.raises(ValueError, match="warmup"):
        Recipe("x", warmup=1.5)
    with pytest.raises(ValueError, match="ema_decay"):
        Recipe("x", ema_decay=1.0)


class _Recorder(Method):
    """One weight that an SGD step moves by exactly -lr (loss = w, gradient 1); records every lr."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.lrs: list[float] = []

    def configure_optimizers(self):
        return {"g": torch.optim.SGD(self.parameters(), lr=1.0)}

    def training_step(self, batch, update):
        self.lrs.append(update.__self__.optimizers["g"].param_groups[0]["lr"])
        update("g", {"w": self.w.sum()})


def test_trainer_follows_schedule_and_averages_weights(batches):
    recipe = Recipe("t", warmup=0.25, cosine_decay=True, ema_decay=0.9)
    method = _Recorder()
    trainer = Trainer(method, batches, 8, recipe=recipe, progress=False)
    trainer.fit()
    expected_lr = [recipe.lr_factor(t, 8) for t in range(8)]
    assert method.lrs == pytest.approx(expected_lr)
    raw, ema = 0.0, 0.0
    for t, lr in enumerate(expected_lr):
        raw -= lr
        d = recipe.ema_factor(t)
        ema = d * ema + (1 - d) * raw
    assert float(method.w.detach()) == pytest.approx(ema)          # after fit the method holds the average
    assert trainer.images_seen == 8 * 4
    trainer.steps = 9                                       # continuing trains the raw weights, not the average
    trainer.fit()
    assert method.lrs[-1] == pytest.approx(recipe.lr_factor(8, 9))


def test_recipe_sets_betas_of_every_optimiser(batches):
    seed_everything(0)
    method = UNetMethod((8, 16), adv_weight=0.1)
    trainer = Trainer(method, batches, 1, recipe=get_recipe("book"), progress=False)
    assert {g["betas"] for opt in trainer.optimizers.values() for g in opt.param_groups} == {(0.9, 0.999)}
    seed_everything(0)
    paper = Trainer(UNetMethod((8, 16), adv_weight=0.1), batches, 1, recipe=get_recipe("paper"), progress=False)
    assert {g["betas"] for opt in paper.optimizers.values() for g in opt.param_groups} == \
        {g["betas"] for opt in paper.method.configure_optimizers().values() for g in opt.param_groups}


def _unet():
    seed_everything(0)
    return UNetMethod((8, 16, 32))


def test_resume_with_ema_is_bit_identical(tmp_path, batches):
    book = get_recipe("book")
    straight = _unet()
    Trainer(straight, batches, 6, recipe=book, progress=False).fit()
    def interrupted_batches(step):  # the schedule depends on the planned steps, so stop a 6-step run midway
        if step == 3:
            raise KeyboardInterrupt
        return batches(step)

    with pytest.raises(KeyboardInterrupt):
        Trainer(_unet(), interrupted_batches, 6, checkpoint_dir=tmp_path, checkpoint_every=1, recipe=book,
                progress=False).fit()
    resumed = _unet()
    trainer = Trainer(resumed, batches, 6, checkpoint_dir=tmp_path, recipe=book, progress=False)
    trainer.fit()
    assert trainer.images_seen == 6 * 4
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_ema_changes_the_evaluated_weights_and_checkpoint_without_ema_is_refused(tmp_path, batches):
    plain, averaged = _unet(), _unet()
    Trainer(plain, batches, 4, checkpoint_dir=tmp_path / "plain", progress=False).fit()
    Trainer(averaged, batches, 4, recipe=Recipe("e", ema_decay=0.99), progress=False).fit()
    first = next(iter(plain.generator.state_dict()))
    assert not torch.equal(plain.generator.state_dict()[first], averaged.generator.state_dict()[first])
    with pytest.raises(CheckpointError, match="no EMA weights"):
        Trainer(_unet(), batches, 6, checkpoint_dir=tmp_path / "plain", recipe=get_recipe("book"), progress=False).fit()


def test_recipe_learning_rate_replaces_the_methods(batches):
    method = _Recorder()
    Trainer(method, batches, 3, recipe=Recipe("lr", lr=0.25), progress=False).fit()
    assert method.lrs == [0.25, 0.25, 0.25]
    assert get_recipe(Recipe("x")) == Recipe("x")


def test_the_trainer_takes_a_recipe_by_name():
    from inpaintlib.models.unet import UNetMethod
    from inpaintlib.train import Trainer

    trainer = Trainer(UNetMethod((8, 16)), lambda step: None, 0, progress=False, recipe="book")
    assert trainer.recipe is get_recipe("book")
    with pytest.raises(ValueError, match="unknown recipe 'fast'"):
        Trainer(UNetMethod((8, 16)), lambda step: None, 0, progress=False, recipe="fast")
