"""One module per op kind: its IR node and its rule (compile, NumPy, C). This registry is the list of
ops the compiler knows; model readers find node classes here by their .ttm type."""

from __future__ import annotations

from tinytrain.ir.graph import Node
from tinytrain.ir.program import CompileError
from tinytrain.ops import (add, avgpool2d, clamp, concat, conv, dense, grad_sum, image_resize, loss, maxpool, mean, pad,
                           requantize, reshape)
from tinytrain.ops.add import Add
from tinytrain.ops.base import OpRule
from tinytrain.ops.conv import Conv2D
from tinytrain.ops.dense import Dense
from tinytrain.ops.image_resize import ImageResize
from tinytrain.ops.avgpool2d import AveragePool2D
from tinytrain.ops.clamp import Clamp
from tinytrain.ops.concat import Concat
from tinytrain.ops.maxpool import MaxPool2D
from tinytrain.ops.pad import Pad
from tinytrain.ops.requantize import Requantize
from tinytrain.ops.reshape import Reshape
from tinytrain.ops.mean import GlobalAveragePool
from tinytrain.ops.weighted import SAVE_CHANNELS

RULES: dict[type[Node], OpRule] = {rule.node_type: rule for rule in (
    conv.RULE, dense.RULE, add.RULE, mean.RULE, maxpool.RULE, avgpool2d.RULE, pad.RULE, concat.RULE, reshape.RULE,
    requantize.RULE, clamp.RULE, image_resize.RULE)}
NODE_TYPES: dict[str, type[Node]] = {cls.op_type: cls for cls in RULES}
LOSS = loss.RULE
GRAD_SUM = grad_sum.RULE

__all__ = ["Add", "AveragePool2D", "Clamp", "Concat", "Conv2D", "Dense", "GlobalAveragePool", "GRAD_SUM", "ImageResize", "LOSS",
           "MaxPool2D", "NODE_TYPES", "Pad", "Requantize", "Reshape", "RULES", "SAVE_CHANNELS", "rule_for"]


def rule_for(node: Node) -> OpRule:
    rule = RULES.get(type(node))
    if rule is None:
        raise CompileError(f"op {node.name} is a {node.op_type or type(node).__name__}, which the compiler has no "
                           f"rules for (it knows {', '.join(sorted(NODE_TYPES))}).")
    return rule
