import weakref

import pytest
import torch

from instcolor.models.backbone import FEATURE_NAMES, FEATURE_STRIDE, ColorizationBackbone
from instcolor.models.fusion import FusionLayer
from instcolor.models.config import ModelConfig
from instcolor.models.model import network_input
from tests.support.helpers import tiny_model


@pytest.mark.parametrize("size", [32, 48, 64])
def test_backbone_shapes_for_any_size_divisible_by_8(size):
    net = ColorizationBackbone(ModelConfig(width=0.125)).eval()
    with torch.no_grad():
        ab, feats = net(network_input(torch.zeros(2, 1, size, size)))
    assert ab.shape == (2, 2, size, size)
    assert list(feats) == list(FEATURE_NAMES)
    for name, value in feats.items():
        assert value.shape[-1] == size // FEATURE_STRIDE[name]
    assert ab.abs().max() <= 1.0


def test_backbone_rejects_size_not_divisible_by_8():
    with pytest.raises(ValueError, match="divisible by 8"):
        ColorizationBackbone(ModelConfig(width=0.125))(torch.zeros(1, 4, 36, 36))


def test_width_multiplier_scales_channels():
    small = sum(p.numel() for p in ColorizationBackbone(ModelConfig(width=0.25)).parameters())
    full = sum(p.numel() for p in ColorizationBackbone(ModelConfig(width=1.0)).parameters())
    assert 10 < full / small < 20  # roughly quadratic in width


def test_network_input_layout():
    x = network_input(torch.full((1, 1, 8, 8), 0.3))
    assert x.shape == (1, 4, 8, 8)
    assert torch.all(x[:, 0] == 0.3) and torch.all(x[:, 1:3] == 0) and torch.all(x[:, 3] == -0.5)


def make_layer(channels=3):
    torch.manual_seed(0)
    return FusionLayer(channels, hidden=4).eval()


def test_fusion_keeps_background_outside_boxes_and_without_boxes():
    layer = make_layer()
    background = torch.randn(1, 3, 8, 8)
    instances = torch.randn(1, 3, 8, 8)
    info = torch.tensor([[2, 2, 1, 3, 4, 4]])  # 4x4 box at x 2..6, y 1..5
    with torch.no_grad():
        fused = layer(background, instances, info)
        alone = layer(background, instances[:0], info[:0])
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[1:5, 2:6] = False
    torch.testing.assert_close(fused[..., outside], background[..., outside])
    torch.testing.assert_close(alone, background)
    assert not torch.allclose(fused[..., 1:5, 2:6], background[..., 1:5, 2:6])


def test_fusion_weights_are_a_convex_combination():
    layer = make_layer(channels=1)
    background = torch.zeros(1, 1, 8, 8)
    instances = torch.ones(2, 1, 8, 8)  # pasted features are 1 inside each box
    info = torch.tensor([[0, 4, 0, 4, 4, 4], [2, 2, 2, 2, 4, 4]])
    with torch.no_grad():
        fused = layer(background, instances, info)
    # the fused value is the total instance weight, in [0, 1]
    assert fused.min() >= 0 and fused.max() <= 1 + 1e-6
    assert fused[0, 0, 2, 2] > 0  # overlap of both boxes


def test_model_without_crops_is_the_full_image_network():
    model = tiny_model()
    x = network_input(torch.rand(1, 1, 32, 32) - 0.5)
    with torch.no_grad():
        torch.testing.assert_close(model(x, None, None), model.full(x)[0])


def test_model_uses_instances():
    model = tiny_model()
    x = network_input(torch.rand(1, 1, 32, 32) - 0.5)
    crops = network_input(torch.rand(1, 1, 32, 32) - 0.5)
    info = {32: torch.tensor([[0, 0, 0, 0, 32, 32]]), 16: torch.tensor([[0, 0, 0, 0, 16, 16]]),
            8: torch.tensor([[0, 0, 0, 0, 8, 8]]), 4: torch.tensor([[0, 0, 0, 0, 4, 4]])}
    with torch.no_grad():
        with_instance = model(x, crops, info)
        other = model(x, crops.flip(-1), info)
    assert with_instance.shape == (1, 2, 32, 32)
    assert not torch.allclose(with_instance, other)


def test_stages_free_each_shortcut_source_before_the_last_upsampling():
    net = ColorizationBackbone(ModelConfig(width=0.125)).eval()
    sources = {}
    with torch.inference_mode():
        stages = net.stages(network_input(torch.zeros(2, 1, 32, 32)))
        for name, value in stages:
            if name in ("conv1_2", "conv2_2", "conv3_3"):
                sources[name] = weakref.ref(value)
            del value
            if name == "conv10_up":  # by now no shortcut source may be held (memory at 16 crops)
                assert [n for n, ref in sources.items() if ref() is not None] == []
                break
    assert len(sources) == 3


def _run_stages(net, x, chunk=None):
    """``(ab, copies of the yielded maps, the yielded tensors themselves)``."""
    copies, yielded = {}, {}
    stages = net.stages(x, chunk=chunk)
    try:
        name, value = next(stages)
        while True:
            copies[name], yielded[name] = value.clone(), value
            name, value = next(stages)
    except StopIteration as done:
        return done.value, copies, yielded


def test_chunked_stages_give_the_same_maps_and_reuse_memory_only_without_autograd():
    net = ColorizationBackbone(ModelConfig(width=0.125)).eval()
    x = network_input(torch.rand(5, 1, 32, 32, generator=torch.Generator().manual_seed(0)) - 0.5)
    with torch.inference_mode():
        ab, maps, _ = _run_stages(net, x)
        ab_chunked, maps_chunked, yielded = _run_stages(net, x, chunk=2)
    torch.testing.assert_close(ab_chunked, ab, atol=1e-6, rtol=0)
    for name in maps:
        torch.testing.assert_close(maps_chunked[name], maps[name], atol=1e-6, rtol=0)
    assert yielded["conv10_2"].data_ptr() == yielded["conv10_up"].data_ptr()  # written over it
    with torch.enable_grad():  # autograd would need the overwritten map: chunking is off
        _, _, yielded = _run_stages(net, x, chunk=2)
    assert yielded["conv10_2"].data_ptr() != yielded["conv10_up"].data_ptr()


def test_streamed_fusion_chunks_the_instance_net_on_cpu_with_the_reference_result(monkeypatch):
    from instcolor.models.fusion import INSTANCE_CHUNK

    model = tiny_model().eval()
    x = network_input(torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)) - 0.5)
    crops = network_input(torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(2)) - 0.5)
    info = {g: torch.tensor([[0, 0, 0, 0, g, g], [g // 4, 0, 0, 0, g // 2, g // 2], [0, 0, g // 2, 0, g, g // 2]])
            for g in (32, 16, 8, 4)}  # fmt: skip
    chunks = []
    stages = ColorizationBackbone.stages

    def spy(self, x, chunk=None):
        chunks.append(chunk)
        return stages(self, x, chunk=chunk)

    monkeypatch.setattr(ColorizationBackbone, "stages", spy)
    with torch.inference_mode():
        expected = model.set_fusion_strategy("reference")(x, crops, info)
        got = model.set_fusion_strategy("streamed")(x, crops, info)
    assert INSTANCE_CHUNK in chunks  # the instance net ran in chunks of crops
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
