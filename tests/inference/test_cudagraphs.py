"""The graph cache logic, with capture replaced by a recorder (real capture needs CUDA: see
``tests/inference/test_runtime.py::test_cuda_graphs_replay_the_eager_result``)."""

import copy

import pytest
import torch

from instcolor.models.model import network_input
from instcolor.inference import cudagraphs
from instcolor.inference.cudagraphs import GraphedNetworks
from tests.support.helpers import tiny_model


class FakeGraph:
    def __init__(self, run, static_inputs):
        self.run, self.static_inputs, self.replays = run, static_inputs, 0
        self.output = run(*static_inputs)

    def replay(self):
        self.replays += 1
        self.output.copy_(self.run(*self.static_inputs))


@pytest.fixture()
def fake_capture(monkeypatch):
    captured = []

    def capture(run, inputs):
        static_inputs = [x.clone() for x in inputs]
        graph = FakeGraph(run, static_inputs)
        captured.append(graph)
        return graph, static_inputs, graph.output

    monkeypatch.setattr(cudagraphs, "_capture", capture)
    return captured


def inputs(n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    full = network_input(torch.rand(1, 1, 32, 32, generator=generator) - 0.5)
    crops = network_input(torch.rand(n, 1, 32, 32, generator=generator) - 0.5)
    info = {g: torch.tensor([[0, 0, 0, 0, g, g]] * n) for g in (32, 16, 8, 4)}
    return full, crops, info


def test_needs_the_batched_strategy():
    with pytest.raises(ValueError, match="batched"):
        GraphedNetworks(tiny_model().set_fusion_strategy("streamed"))


def test_one_graph_per_shape_replayed_with_new_inputs(fake_capture):
    model = tiny_model().set_fusion_strategy("batched")
    graphed = GraphedNetworks(copy.deepcopy(model), max_graphs=2)
    with torch.inference_mode():
        for seed in (0, 1):  # same shape, new values: one capture, then a replay on the new values
            full, crops, info = inputs(2, seed)
            torch.testing.assert_close(graphed.fusion(full, crops, info), model(full, crops, info))
        assert len(fake_capture) == 1 and fake_capture[0].replays == 2
        out = graphed.fusion(*inputs(3))
        graphed.full(inputs(1)[0])
        assert len(fake_capture) == 3 and len(graphed._graphs) == 2  # least recently used dropped
        assert out is not graphed._graphs[next(reversed(graphed._graphs))][2]  # callers get a copy


def test_failed_capture_runs_eagerly_from_then_on(monkeypatch):
    calls = []

    def broken(run, inputs):
        calls.append(1)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(cudagraphs, "_capture", broken)
    model = tiny_model().set_fusion_strategy("batched")
    graphed = GraphedNetworks(model)
    full, crops, info = inputs(2)
    with torch.inference_mode(), pytest.warns(UserWarning, match="running eagerly"):
        first = graphed.fusion(full, crops, info)
    with torch.inference_mode():
        torch.testing.assert_close(graphed.fusion(full, crops, info), first)
    assert len(calls) == 1
