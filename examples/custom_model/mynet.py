"""A user network for ``bnsearch run --model examples/custom_model/mynet.py:build``.

bnsearch calls ``build(params, in_shape, num_classes)`` once per trial with the trial's resolved
parameters (``bnsearch.core.space.TrialParams``): the training and BN settings of the search
space (``params.lr``, ``params.bn_placement``, ``params.gamma_init``, ...) and, in
``params.extra``, the parameters this network declares itself in ``space.toml`` (here
``blocks``, ``channels`` and ``dropout``). It returns an ``nn.Module`` mapping a batch
``(N, C, H, W)`` to logits ``(N, num_classes)``; bnsearch trains, prunes, saves and reloads it
like its own nets.

``conv_norm_act`` is bnsearch's conv → norm → activation block: it puts BN before or after the
activation (or nowhere) as ``params.bn_placement`` says, with ``params.norm`` and
``params.bn_momentum`` when the space sets them. ``init_norms`` then sets every norm layer's
gamma and beta from ``params.gamma_init`` / ``params.beta_init`` (``zero_last``: gamma 0 on the
last one), as the built-in nets do.
"""

from __future__ import annotations

from torch import nn

from bnsearch.core.blocks import conv_norm_act, init_norms, make_norm
from bnsearch.core.space import TrialParams


def build(params: TrialParams, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    channels = int(params.extra["channels"])
    layers: list[nn.Module] = [conv_norm_act(in_shape[0], channels, params)]
    for _ in range(int(params.extra["blocks"]) - 1):
        layers.append(conv_norm_act(channels, channels, params))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(float(params.extra["dropout"]))]
    if params.bn_classifier:
        layers.append(make_norm(params.norm, channels, dims=1))
    layers.append(nn.Linear(channels, num_classes))
    return init_norms(nn.Sequential(*layers), params)
