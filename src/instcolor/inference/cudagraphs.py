"""CUDA graphs for the networks: each input shape is captured once, then replayed.

Eager PyTorch launches some 700 kernels for an image with 8 instances, and on a fast GPU the
networks then wait on the CPU that launches them. A CUDA graph records the launches once per
input shape (instance count, network size, dtype) and replays them in one call. Capture needs a
run without host synchronisation, which the ``"batched"`` fusion strategy gives (box placements
are device tensors; ``"regions"`` reads them on the host). Each graph keeps its own memory pool,
so only the :attr:`GraphedNetworks.max_graphs` most recent shapes are kept.

A shape whose capture fails runs eagerly from then on (with a warning), so graphs never cost
correctness.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

from instcolor.models.model import InstColorModel


class GraphedNetworks:
    """Runs :class:`InstColorModel` paths through CUDA graphs captured per input shape.

    Args:
        model: the networks, on a CUDA device, with the ``"batched"`` fusion strategy.
        max_graphs: most graphs kept (least recently used ones are dropped).
    """

    def __init__(self, model: InstColorModel, max_graphs: int = 4) -> None:
        if model.fusion_strategy != "batched":
            raise ValueError("CUDA graphs need the 'batched' fusion strategy (no host synchronisation)")
        self.model = model
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], torch.Tensor]] = OrderedDict()
        self._eager: set[tuple] = set()

    def full(self, x: torch.Tensor) -> torch.Tensor:
        """ab ``(B, 2, S, S)`` of the full-image network."""
        key = ("full", tuple(x.shape), x.dtype)
        return self._run(key, lambda inp: self.model.full(inp)[0], [x])

    def fusion(
        self,
        full_input: torch.Tensor,
        crops: torch.Tensor,
        box_info: dict[int, torch.Tensor],
        crop_masks: torch.Tensor | None = None,
        crop_classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ab ``(1, 2, S, S)`` of the fusion path (as :meth:`InstColorModel.forward`)."""
        grids = sorted(box_info)
        infos = [box_info[grid].to(full_input.device, non_blocking=True) for grid in grids]
        masked, classed = crop_masks is not None, crop_classes is not None
        key = ("fusion", tuple(full_input.shape), tuple(crops.shape), full_input.dtype, tuple(grids), masked, classed)

        def run(full: torch.Tensor, crop_inputs: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
            rest = list(rest)
            masks = rest.pop(0) if masked else None
            classes = rest.pop(0) if classed else None
            return self.model(full, crop_inputs, dict(zip(grids, rest)), masks, classes)

        optional = [x for x in (crop_masks, crop_classes) if x is not None]
        return self._run(key, run, [full_input, crops, *optional, *infos])

    def _run(self, key: tuple, run: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        if key in self._eager:
            return run(*inputs)
        entry = self._graphs.get(key)
        if entry is None:
            try:
                entry = _capture(run, inputs)
            except Exception as err:  # a graph is an optimisation: fall back to eager, once per shape
                warnings.warn(f"CUDA graph capture failed for {key[:2]}, running eagerly: {err}", stacklevel=3)
                self._eager.add(key)
                return run(*inputs)
            self._graphs[key] = entry
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        graph, static_inputs, static_output = entry
        for buffer, value in zip(static_inputs, inputs):
            buffer.copy_(value, non_blocking=True)
        graph.replay()
        return static_output.clone()


def _capture(
    run: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor]
) -> tuple[torch.cuda.CUDAGraph, list[torch.Tensor], torch.Tensor]:
    static_inputs = [x.clone() for x in inputs]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: cuDNN picks its kernels, the allocator settles
        for _ in range(2):
            run(*static_inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = run(*static_inputs)
    return graph, static_inputs, static_output
