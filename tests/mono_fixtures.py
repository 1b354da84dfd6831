"""Models for the Mono Depth tests: a random built-in network with a spread output, and tiny ONNX graphs."""

from __future__ import annotations

import onnx
import torch
from onnx import TensorProto, helper

from core.mono.network import MonoDepthConfig, MonoDepthNet


def random_network(name: str = "default", seed: int = 0) -> MonoDepthNet:
    """A MonoDepthNet with random weights and batch-norm statistics, its output spread over (0, 1)."""
    torch.manual_seed(seed)
    model = MonoDepthNet(MonoDepthConfig.named(name))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model.eval()
    # A fresh head's logits barely vary, so its sigmoid is nearly constant: rescale the last
    # convolution so that the logits span about -3..3 on a sample image.
    head = model.depth_head[-1]
    logits = []
    handle = head.register_forward_hook(lambda module, args, out: logits.append(out))
    with torch.no_grad():
        model(torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(seed)))
        handle.remove()
        z = logits[0]
        k = 6.0 / float(z.max() - z.min())
        head.weight.mul_(k)
        head.bias.copy_(k * (head.bias - z.mean()))
    return model


def save_graph(path, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def conv_model(path, weights, bias=0.0, then=None, shape=("N", 3, "H", "W")):
    """An ONNX model: a 1x1 convolution of the image's channels (then an elementwise op), one map out."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], list(weights))
    b = helper.make_tensor("b", TensorProto.FLOAT, [1], [bias])
    nodes = [helper.make_node("Conv", ["pixel_values", "w", "b"], ["y" if then else "depth"])]
    if then:
        nodes.append(helper.make_node(then, ["y"], ["depth"]))
    return save_graph(path, nodes, [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, list(shape))],
                      [helper.make_tensor_value_info("depth", TensorProto.FLOAT, None)], [w, b])
