"""A small numpy executor for TFJS graph models, used as the independent reference in tests.

It runs the graph node by node, exactly as TensorFlow defines each op (NHWC layout, TF "SAME"
padding, legacy ``ResizeBilinear`` sampling, ...), in float64 by default, and shares no code with
the PyTorch port. Only the ops the tests need are implemented; any other op raises.
"""

from __future__ import annotations

import math

import numpy as np

from instcolor.detection.tfjs import GraphNode, TFJSGraphModel

_ACTIVATIONS = {
    "Relu": lambda x: np.maximum(x, 0),
    "Relu6": lambda x: np.clip(x, 0, 6),
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pad_nhwc(x: np.ndarray, kernel: tuple[int, int], strides, dilations, padding: str, value=0.0):
    if padding == "VALID":
        return x
    if padding != "SAME":
        raise NotImplementedError(f"padding {padding}")
    (top, bottom), (left, right) = (
        _same_padding(x.shape[1], kernel[0], strides[1], dilations[1]),
        _same_padding(x.shape[2], kernel[1], strides[2], dilations[2]),
    )
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _taps(x: np.ndarray, kernel: tuple[int, int], strides, dilations):
    """Yield ``(i, j, window)`` for every kernel tap: the strided input slice that tap multiplies."""
    kh, kw = kernel
    out_h = (x.shape[1] - ((kh - 1) * dilations[1] + 1)) // strides[1] + 1
    out_w = (x.shape[2] - ((kw - 1) * dilations[2] + 1)) // strides[2] + 1
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dilations[1], j * dilations[2]
            rows = slice(y0, y0 + strides[1] * (out_h - 1) + 1, strides[1])
            cols = slice(x0, x0 + strides[2] * (out_w - 1) + 1, strides[2])
            yield i, j, x[:, rows, cols, :]


def conv2d(x, w, strides, padding, dilations):
    """``tf.nn.conv2d``: x ``(N, H, W, C)``, w ``(kh, kw, C, O)``."""
    x = _pad_nhwc(x, w.shape[:2], strides, dilations, padding)
    out = None
    for i, j, window in _taps(x, w.shape[:2], strides, dilations):
        term = window @ w[i, j]
        out = term if out is None else out + term
    return out


def depthwise_conv2d(x, w, strides, padding, dilations):
    """``tf.nn.depthwise_conv2d``: x ``(N, H, W, C)``, w ``(kh, kw, C, M)`` -> ``C*M`` channels."""
    x = _pad_nhwc(x, w.shape[:2], strides, dilations, padding)
    out = None
    for i, j, window in _taps(x, w.shape[:2], strides, dilations):
        term = (window[..., :, None] * w[i, j]).reshape(*window.shape[:3], -1)
        out = term if out is None else out + term
    return out


def max_pool(x, ksize, strides, padding):
    x = _pad_nhwc(x, ksize[1:3], strides, [1, 1, 1, 1], padding, value=-np.inf)
    out = None
    for _, _, window in _taps(x, ksize[1:3], strides, [1, 1, 1, 1]):
        out = window if out is None else np.maximum(out, window)
    return out


def avg_pool(x, ksize, strides, padding):
    """``tf.nn.avg_pool`` (VALID only: with SAME, TF divides by the count of real pixels)."""
    if padding != "VALID":
        raise NotImplementedError(f"AvgPool padding {padding}")
    out = None
    for _, _, window in _taps(x, ksize[1:3], strides, [1, 1, 1, 1]):
        out = window if out is None else out + window
    return out / (ksize[1] * ksize[2])


def conv2d_backprop_input(output_shape, w, dy, strides, padding):
    """``tf.nn.conv2d_transpose``: the adjoint of :func:`conv2d` with filter ``w`` ``(kh, kw, O, C)``.

    Every input pixel ``dy[n, i, j, c]`` scatters ``dy * w[a, b, :, c]`` onto output
    ``(i * s + a - pad_top, j * s + b - pad_left)``, where the padding is what the forward
    convolution from ``output_shape`` would use.
    """
    n, height, width, channels = (int(v) for v in output_shape)
    kh, kw = w.shape[:2]
    if padding == "SAME":
        top, _ = _same_padding(height, kh, strides[1], 1)
        left, _ = _same_padding(width, kw, strides[2], 1)
    elif padding == "VALID":
        top = left = 0
    else:
        raise NotImplementedError(f"padding {padding}")
    pad_h, pad_w = height + 2 * kh + strides[1] * dy.shape[1], width + 2 * kw + strides[2] * dy.shape[2]
    out = np.zeros((n, pad_h, pad_w, channels), dtype=dy.dtype)
    rows, cols = np.arange(dy.shape[1]) * strides[1], np.arange(dy.shape[2]) * strides[2]
    for a in range(kh):
        for b in range(kw):
            contribution = dy @ w[a, b].T  # (N, h, w, O)
            out[:, (rows + a)[:, None], (cols + b)[None, :], :] += contribution
    return out[:, top : top + height, left : left + width, :]


def resize_bilinear(x, size, align_corners: bool, half_pixel_centers: bool):
    """``tf.image.resize_bilinear`` (TF1 semantics, including the legacy corner mapping)."""

    def source(out_size: int, in_size: int):
        if align_corners and out_size > 1:
            scale = (in_size - 1) / (out_size - 1)
        else:
            scale = in_size / out_size
        dst = np.arange(out_size, dtype=np.float64)
        src = (dst + 0.5) * scale - 0.5 if half_pixel_centers else dst * scale
        src = np.clip(src, 0, None)
        low = np.minimum(np.floor(src).astype(int), in_size - 1)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, (src - low)

    y0, y1, fy = source(int(size[0]), x.shape[1])
    x0, x1, fx = source(int(size[1]), x.shape[2])
    fy = fy.astype(x.dtype)[None, :, None, None]
    fx = fx.astype(x.dtype)[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bottom * fy


def strided_slice(x, begin, end, strides, attrs):
    if attrs.get("ellipsis_mask", 0) or attrs.get("new_axis_mask", 0):
        raise NotImplementedError("StridedSlice with ellipsis/new-axis masks")
    index = []
    for axis in range(len(begin)):
        b = None if attrs.get("begin_mask", 0) >> axis & 1 else int(begin[axis])
        e = None if attrs.get("end_mask", 0) >> axis & 1 else int(end[axis])
        if attrs.get("shrink_axis_mask", 0) >> axis & 1:
            index.append(int(begin[axis]))
        else:
            index.append(slice(b, e, int(strides[axis])))
    return x[tuple(index)]


def top_k(x, k):
    """``tf.math.top_k`` along the last axis; ties keep the lower index first."""
    order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, order, axis=-1), order.astype(np.int32)


class NumpyGraphExecutor:
    """Execute a :class:`TFJSGraphModel` with numpy.

    Args:
        model: the loaded graph.
        dtype: floating dtype of the computation (weights are cast to it).
    """

    def __init__(self, model: TFJSGraphModel, dtype=np.float64):
        self.model = model
        self.dtype = np.dtype(dtype)

    def _const(self, node: GraphNode):
        value = self.model.weights[node.name]
        return value.astype(self.dtype) if value.dtype.kind == "f" else value

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        values: dict[str, list] = {}

        def fetch(name: str):
            base, _, index = name.partition(":")
            if base not in values:
                evaluate(self.model.node(base))
            return values[base][int(index or 0)]

        def evaluate(root: GraphNode) -> None:
            stack = [root]
            while stack:
                node = stack[-1]
                if node.name in values:
                    stack.pop()
                    continue
                pending = [
                    self.model.node(i) for i in node.inputs if not i.startswith("^") and i.split(":")[0] not in values
                ]
                if pending:
                    stack.extend(pending)
                    continue
                stack.pop()
                args = [fetch(i) for i in node.inputs if not i.startswith("^")]
                result = self._execute(node, args, feeds)
                values[node.name] = list(result) if isinstance(result, tuple) else [result]

        return {name: fetch(name) for name in outputs}

    def _execute(self, node: GraphNode, args: list, feeds: dict[str, np.ndarray]):
        op, a = node.op, node.attrs
        if op == "Placeholder":
            return np.asarray(feeds[node.name], dtype=self.dtype)
        if op == "Const":
            return self._const(node)
        if op == "Identity":
            return args[0]
        if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
            if a.get("data_format", "NHWC") != "NHWC":
                raise NotImplementedError("only NHWC convolutions")
            conv = conv2d if "Depthwise" not in op else depthwise_conv2d
            dilations = a.get("dilations") or [1, 1, 1, 1]
            out = conv(args[0], args[1], a["strides"], a["padding"], dilations)
            for fused in a.get("fused_ops", []):
                if fused == "BiasAdd":
                    out = out + args[2]
                elif fused in _ACTIVATIONS:
                    out = _ACTIVATIONS[fused](out)
                else:
                    raise NotImplementedError(f"{op} fused op {fused}")
            return out
        if op in _ACTIVATIONS:
            return _ACTIVATIONS[op](args[0])
        if op in ("Add", "AddV2"):
            return args[0] + args[1]
        if op == "AddN":
            return sum(args[1:], args[0])
        if op == "AvgPool":
            if a.get("data_format", "NHWC") != "NHWC":
                raise NotImplementedError("only NHWC pooling")
            return avg_pool(args[0], a["ksize"], a["strides"], a["padding"])
        if op == "Conv2DBackpropInput":
            if a.get("data_format", "NHWC") != "NHWC" or any(d != 1 for d in a.get("dilations") or [1] * 4):
                raise NotImplementedError("only NHWC, undilated transposed convolutions")
            return conv2d_backprop_input(args[0], args[1], args[2], a["strides"], a["padding"])
        if op == "Sub":
            return args[0] - args[1]
        if op == "Mul":
            return args[0] * args[1]
        if op == "FloorDiv":
            return np.floor_divide(args[0], args[1])
        if op == "FloorMod":
            return np.mod(args[0], args[1])
        if op == "Equal":
            return args[0] == args[1]
        if op == "Cast":
            target = {"DT_FLOAT": self.dtype, "DT_INT32": np.int32, "DT_BOOL": bool}[a["DstT"]]
            return args[0].astype(target)
        if op == "Mean":
            return args[0].mean(axis=tuple(np.atleast_1d(args[1]).tolist()), keepdims=a.get("keep_dims", False))
        if op == "ConcatV2":
            return np.concatenate(args[:-1], axis=int(args[-1]))
        if op == "Reshape":
            return args[0].reshape(np.atleast_1d(args[1]).tolist())
        if op == "ExpandDims":
            return np.expand_dims(args[0], int(args[1]))
        if op == "StridedSlice":
            return strided_slice(args[0], args[1], args[2], args[3], a)
        if op == "ResizeBilinear":
            return resize_bilinear(args[0], args[1], a.get("align_corners", False), a.get("half_pixel_centers", False))
        if op == "MaxPool":
            return max_pool(args[0], a["ksize"], a["strides"], a["padding"])
        if op == "TopKV2":
            return top_k(args[0], int(args[1]))
        if op == "GatherV2":
            if a.get("batch_dims", 0):
                raise NotImplementedError("GatherV2 with batch_dims")
            return np.take(args[0], args[1], axis=int(args[2]))
        raise NotImplementedError(f"op {op} ({node.name})")
