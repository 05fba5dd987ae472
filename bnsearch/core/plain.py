"""``--model plain``: a VGG-style plain CNN whose depth and width are space parameters.

```
input → stage 1: depth₁ × conv_norm_act(w)  → maxpool2
      → stage 2: depth₂ × conv_norm_act(2w) → maxpool2
      → stage 3: depth₃ × conv_norm_act(4w)
      → global average pool → flatten → [norm1d] → linear(num_classes)
```
``depth`` (2–20) conv layers are spread over up to three stages as evenly as the order allows
(earlier stages take the remainder); an image too small for two pools gets fewer stages. Each
conv layer is ``bnsearch.core.blocks.conv_norm_act``: BN before or after the activation, or
none, per ``bn_placement``; ``[norm1d]`` before the classifier when ``bn_classifier``. Gamma/beta
init as the BN-CNN (``zero_last``: gamma 0 on the last normalisation layer of the net).
Without skip paths nothing but normalisation keeps a deep stack trainable, which is why BN's
effect shows here and not in the two-conv BN-CNN.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bnsearch.core.blocks import classifier_input, conv_norm_act, init_norms
from bnsearch.core.space import PLAIN_DEPTH, PLAIN_WIDTH, TrialParams

MAX_STAGES = 3


def stage_depths(depth: int, in_hw: tuple[int, int]) -> list[int]:
    """Conv layers per stage: ``depth`` spread over up to three stages, fewer for small images
    (the last stage keeps at least 2×2 pixels) or shallow nets."""
    pools = max(0, int(math.log2(max(1, min(in_hw)))) - 1)
    stages = max(1, min(MAX_STAGES, depth, pools + 1))
    return [depth // stages + (1 if i < depth % stages else 0) for i in range(stages)]


class PlainCNN(nn.Module):
    """A stack of ``depth`` conv → norm → act layers in stages, then a linear classifier.

    ``features`` holds every layer up to the (optionally normalised) pooled vector, in order.
    """

    def __init__(self, params: TrialParams, *, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels, height, width = in_shape
        depth = params.depth or PLAIN_DEPTH
        base = params.width or PLAIN_WIDTH
        layers: list[nn.Module] = []
        c_in = channels
        for stage, n in enumerate(stage_depths(depth, (height, width))):
            if stage:
                layers.append(nn.MaxPool2d(2))
            c_out = base * 2**stage
            for _ in range(n):
                layers.append(conv_norm_act(c_in, c_out, params))
                c_in = c_out
        layers += classifier_input(c_in, params)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)
        self.params = params
        init_norms(self, params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
