"""The confined fusion rule: instances only inside their supports; masks; the reference rule kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instcolor.inference.pipeline import Colorizer
from instcolor.inference.preprocess import prepare
from instcolor.models.config import ModelConfig
from instcolor.models.fusion import FusionLayer, confine, instance_supports
from instcolor.models.model import network_input
from tests.support.helpers import gradient_image, tiny_model


def confined_model(seed: int = 0):
    model = tiny_model(seed)
    return model.set_fusion_rule("confined")


def run(model, image_l: torch.Tensor, boxes, masks=None, strategy="reference") -> torch.Tensor:
    model.set_fusion_strategy(strategy)
    inputs = prepare(image_l, np.asarray(boxes, np.float32), 64, masks=masks)
    with torch.no_grad():
        return model(network_input(inputs.full), network_input(inputs.crops), inputs.box_info, inputs.crop_masks)


@pytest.fixture
def lightness():
    grey = gradient_image(64, 64, seed=3)[..., 0].astype(np.float32) / 255.0
    return torch.from_numpy(grey - 0.5)[None, None]


def test_fused_layer_inside_a_box_does_not_depend_on_other_disjoint_boxes():
    torch.manual_seed(0)
    layer = FusionLayer(3, hidden=4).eval()
    with torch.no_grad():  # positive logits everywhere, so that the reference rule's dilution shows
        layer.instance_net[-2].bias.fill_(0.5)
        layer.background_net[-2].bias.fill_(0.5)
    background = torch.randn(1, 3, 16, 16)
    instances = torch.randn(2, 3, 8, 8)
    info = torch.tensor([[1, 9, 1, 9, 6, 6], [10, 1, 10, 1, 5, 5]])  # two disjoint boxes
    support = instance_supports(None, 2, 8, 0.125, background)
    one = (slice(None), slice(None), slice(1, 7), slice(1, 7))
    for paste in ("padded", "gathered", "regions"):
        layer.paste = paste
        with torch.no_grad():
            alone = layer(background, instances[:1], info[:1], support=support[:1])
            both = layer(background, instances, info, support=support)
            ref_alone = layer(background, instances[:1], info[:1])
            ref_both = layer(background, instances, info)
        torch.testing.assert_close(both[one], alone[one], atol=1e-6, rtol=0)
        assert (ref_both[one] - ref_alone[one]).abs().max() > 1e-2, "the reference rule dilutes (kept as is)"


def test_paste_strategies_agree_under_the_confined_rule(lightness):
    model = confined_model()
    boxes = [[4, 6, 40, 50], [20, 10, 60, 60], [0, 0, 12, 12]]
    outputs = [run(model, lightness, boxes, strategy=s) for s in ("reference", "streamed", "batched")]
    for other in outputs[1:]:
        torch.testing.assert_close(other, outputs[0], atol=1e-5, rtol=1e-4)


def test_support_is_feathered_box_and_zero_logit_outside():
    support = instance_supports(None, 1, 32, 0.25, torch.zeros(1))
    assert support.shape == (1, 1, 32, 32)
    assert support[0, 0, 16, 16] == 1.0 and 0 < support[0, 0, 0, 0] < 0.01
    assert torch.all(support[0, 0, :, 16].diff()[:7] > 0)  # ramps up from the border
    logits = confine(torch.ones(1, 1, 2, 2), torch.tensor([[[[0.0, 1.0], [0.5, 1.0]]]]))
    assert logits[0, 0, 0, 0] == -torch.inf and logits[0, 0, 0, 1] == 1.0


def test_with_a_mask_an_instance_acts_only_inside_its_silhouette():
    torch.manual_seed(0)
    layer = FusionLayer(3, hidden=4).eval()
    background = torch.randn(1, 3, 16, 16)
    instances = torch.randn(1, 3, 16, 16)
    info = torch.tensor([[0, 0, 0, 0, 16, 16]])  # the box is the whole grid
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :, :6] = 1.0  # silhouette: the left columns
    support = instance_supports(mask, 1, 16, 0.125, background)
    for paste in ("padded", "gathered", "regions"):
        layer.paste = paste
        with torch.no_grad():
            fused = layer(background, instances, info, support=support)
        torch.testing.assert_close(fused[..., 8:], background[..., 8:])  # beyond the silhouette's soft edge
        assert (fused[..., 1:15, :4] - background[..., 1:15, :4]).abs().max() > 1e-3  # inside it


def test_mask_moves_the_result_towards_no_instance_outside_the_silhouette(lightness):
    model = confined_model()
    boxes = [[8, 8, 56, 56]]
    mask = np.zeros((1, 64, 64), bool)
    mask[0, 8:56, 8:56] = True
    box_only = run(model, lightness, boxes)
    full_box_mask = run(model, lightness, boxes, masks=mask)
    torch.testing.assert_close(full_box_mask, box_only, atol=1e-6, rtol=0)  # a mask filling the box is the box
    mask[0, 8:56, 32:56] = False  # the silhouette: left half of the box
    with_mask = run(model, lightness, boxes, masks=mask)
    no_instance = run(model, lightness, [[8, 8, 9, 9]])  # the fusion backbone with a negligible instance
    right = (slice(None), slice(None), slice(10, 54), slice(44, 54))
    assert (with_mask - no_instance)[right].abs().mean() < 0.5 * (box_only - no_instance)[right].abs().mean()


def test_reference_rule_ignores_masks(lightness):
    model = tiny_model()
    boxes = [[8, 8, 56, 56]]
    mask = np.zeros((1, 64, 64), bool)
    mask[0, 20:30, 20:30] = True
    torch.testing.assert_close(run(model, lightness, boxes, masks=mask), run(model, lightness, boxes))


def test_wrong_sized_or_empty_masks_are_clear_errors(lightness):
    with pytest.raises(ValueError, match="expected 1 masks of 64x64"):
        prepare(lightness, np.array([[0, 0, 10, 10]], np.float32), 64, masks=np.ones((1, 32, 32), bool))
    empty = np.zeros((1, 64, 64), bool)
    empty[0, 40:50, 40:50] = True  # outside the box
    with pytest.raises(ValueError, match="mask of instance 1 is empty inside its box"):
        prepare(lightness, np.array([[0, 0, 10, 10]], np.float32), 64, masks=empty)


def test_colorizer_masks_none_and_auto_and_box_fallback():
    image = gradient_image(64, 64)
    model = confined_model()
    boxes = np.array([[8, 8, 56, 56], [0, 30, 20, 60]], np.float32)
    mask = np.zeros((2, 64, 64), bool)
    mask[0, 8:56, 8:30] = True
    mask[1, 30:60, 0:20] = True  # the second instance's mask is its box: the box fallback
    with_masks = Colorizer(model, size=64, masks="auto")(image, boxes=boxes, masks=mask)
    no_masks = Colorizer(confined_model(), size=64, masks="none")(image, boxes=boxes, masks=mask)
    boxes_only = Colorizer(confined_model(), size=64)(image, boxes=boxes)
    assert np.array_equal(np.asarray(no_masks.image), np.asarray(boxes_only.image))
    assert not np.array_equal(np.asarray(with_masks.image), np.asarray(boxes_only.image))


def test_model_config_checks_the_rule():
    with pytest.raises(ValueError, match="fusion_rule"):
        ModelConfig(fusion_rule="softest")
