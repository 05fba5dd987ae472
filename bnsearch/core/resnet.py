"""``--model resnet``: a small residual net (He et al.'s CIFAR ResNet: basic blocks, depth 6n+2).

```
input → conv3x3(w) [→ norm → act]                      (post-activation only)
      → n blocks (w) → n blocks (2w, stride 2) → n blocks (4w, stride 2)
      [→ norm → act]                                   (pre-activation only)
      → global average pool → flatten → [norm1d] → linear(num_classes)
```
A basic block, per ``bn_placement``::

    post_activation (He et al. 2016a, the original):
        x ─ conv3x3 ─ BN ─ act ─ conv3x3 ─ BN* ─(+)─ act ─▶
        └──────────── shortcut ─────────────────┘
    pre_activation (He et al. 2016b):
        x ─ BN ─ act ─┬─ conv3x3 ─ BN* ─ act ─ conv3x3 ─(+)─▶
        └─────────────┴──────── shortcut ────────────────┘
    none: the post-activation block without its BN layers.

The shortcut is the identity, or a 1×1 conv with stride 2 where the block changes shape
(followed by BN in the post-activation block; fed the block's normalised input in the
pre-activation block). ``BN*`` is the last BN of the residual branch: ``gamma_init = zero_last``
starts exactly those at gamma 0 (Goyal et al. 2017), so each post-activation block starts as
the identity plus a ReLU; in a pre-activation block the branch then starts at ``conv(act(β))``,
zero when β = 0 and act(0) = 0. Every other norm layer (stem, shortcut, head, classifier)
starts at gamma 1. ``norm = group`` puts GroupNorm where BN would be.
"""

from __future__ import annotations

import torch
from torch import nn

from bnsearch.core.blocks import activation, classifier_input, init_norm, make_norm, norm_layers
from bnsearch.core.space import RESNET_DEPTH, RESNET_WIDTH, TrialParams


class BasicBlock(nn.Module):
    """Two 3×3 convs and a shortcut, normalised as ``pre_activation`` or post-activation."""

    def __init__(self, c_in: int, c_out: int, *, stride: int, params: TrialParams) -> None:
        super().__init__()
        self.pre = params.bn_placement == "pre_activation"
        normed = params.bn_placement != "none" and params.norm != "none"

        def norm(c: int) -> nn.Module:
            return make_norm(params.norm, c, momentum=params.bn_momentum) if normed else nn.Identity()

        # Pre-activation normalises the block's input; post-activation each conv's output.
        self.norm1 = norm(c_in if self.pre else c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=not normed)
        self.act1 = activation(params.activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=not normed)
        self.norm2 = norm(c_out)  # the last norm layer of the residual branch in both blocks
        self.act2 = activation(params.activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            proj = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=not normed)
            self.shortcut = proj if self.pre or not normed else nn.Sequential(proj, norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre:
            h = self.act1(self.norm1(x))
            # A projection sees the normalised input (He et al. 2016b); the identity the raw one.
            skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(h)
            return self.conv2(self.act2(self.norm2(self.conv1(h)))) + skip
        h = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-style ResNet of depth 6n+2 (n basic blocks per stage, three stages)."""

    def __init__(self, params: TrialParams, *, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        depth = params.depth or RESNET_DEPTH
        width = params.width or RESNET_WIDTH
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a resnet's depth must be 6n+2 (8, 14, 20, ...), got {depth}")
        if params.bn_placement not in ("none", "post_activation", "pre_activation"):
            raise ValueError(f"unknown resnet bn_placement {params.bn_placement!r}")
        n = (depth - 2) // 6
        pre = params.bn_placement == "pre_activation"
        normed = params.bn_placement != "none" and params.norm != "none"
        stem: list[nn.Module] = [nn.Conv2d(in_shape[0], width, 3, padding=1, bias=not normed or pre)]
        if not pre:
            if normed:
                stem.append(make_norm(params.norm, width, momentum=params.bn_momentum))
            stem.append(activation(params.activation))
        self.stem = nn.Sequential(*stem)
        blocks: list[nn.Module] = []
        c_in = width
        for stage in range(3):
            c_out = width * 2**stage
            for i in range(n):
                blocks.append(BasicBlock(c_in, c_out, stride=2 if stage and i == 0 else 1, params=params))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        head: list[nn.Module] = []
        if pre:
            head += [make_norm(params.norm, c_in, momentum=params.bn_momentum) if normed else nn.Identity()]
            head.append(activation(params.activation))
        head += classifier_input(c_in, params)
        self.head = nn.Sequential(*head)
        self.classifier = nn.Linear(c_in, num_classes)
        self.params = params
        self._init_norms(params)

    def branch_last_norms(self) -> list[nn.Module]:
        """The last norm layer of each residual branch (``norm2`` of each block), in order."""
        return [b.norm2 for b in self.blocks if isinstance(b, BasicBlock) and not isinstance(b.norm2, nn.Identity)]

    def _init_norms(self, params: TrialParams) -> None:
        gamma = params.gamma_init or "ones"
        last = {id(m) for m in self.branch_last_norms()}
        for m in norm_layers(self):
            how = ("zeros" if id(m) in last else "ones") if gamma == "zero_last" else gamma
            init_norm(m, how, params.beta_init or "zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.blocks(self.stem(x))))
