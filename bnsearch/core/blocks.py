"""The building blocks of bnsearch's networks, public so that a user's own net gets the same BN knobs.

``conv_norm_act(c_in, c_out, params)`` is a 3×3 convolution followed by a normalisation layer
and an activation, in the order ``params.bn_placement`` says::

    before_activation:  conv (no bias) → norm → act
    after_activation:   conv → act → norm
    none:               conv → act

``params.norm`` picks the layer (``batch``: BatchNorm2d with ``params.bn_momentum``; ``group``:
GroupNorm; ``none``: no layer), and ``params.gamma_init`` / ``params.beta_init`` its initial
scale and shift. ``init_norms(model, params)`` applies those inits to every normalisation layer
of a whole network (``zero_last``: gamma 0 on the last one only), as the built-in nets do.

A user factory in a few lines::

    from torch import nn
    from bnsearch.core.blocks import conv_norm_act, init_norms

    def build(params, in_shape, num_classes):
        net = nn.Sequential(
            conv_norm_act(in_shape[0], 32, params), nn.MaxPool2d(2),
            conv_norm_act(32, 64, params), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, num_classes),
        )
        return init_norms(net, params)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

if TYPE_CHECKING:
    from bnsearch.core.space import TrialParams

_SMALL = 0.1  # value of the "small" gamma/beta init
_NORMAL_STD = 0.1  # std of the "normal" gamma/beta init
LEAKY_RELU_SLOPE = 0.01  # negative slope of leaky_relu
GROUPS = 32  # GroupNorm groups (Wu & He's default), fewer where the channels do not divide

NormLayer = nn.modules.batchnorm._BatchNorm | nn.GroupNorm
M = TypeVar("M", bound=nn.Module)


def activation(name: str, *, leaky_relu_slope: float = LEAKY_RELU_SLOPE) -> nn.Module:
    """The activation module named ``name`` (relu, leaky_relu, tanh, sigmoid).

    Raises:
        ValueError: an unknown name.
    """
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(leaky_relu_slope)
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"unknown activation {name!r}")


def make_norm(kind: str | None, channels: int, *, dims: int = 2, momentum: float | None = None) -> nn.Module:
    """A normalisation layer over ``channels`` channels.

    Args:
        kind: ``batch`` (or None), ``group`` or ``none`` (an ``nn.Identity``).
        channels: Channels (or features, for ``dims=1``) it normalises.
        dims: 2 for feature maps (N, C, H, W), 1 for vectors (N, C).
        momentum: BatchNorm's running-stats momentum; None keeps torch's default (0.1).

    Raises:
        ValueError: an unknown kind.
    """
    if kind in (None, "batch"):
        bn = nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
        if momentum is not None:
            bn.momentum = momentum
        return bn
    if kind == "group":
        return nn.GroupNorm(math.gcd(GROUPS, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer with a learnable gamma/beta (BatchNorm, GroupNorm)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm | nn.GroupNorm)


def norm_layers(model: nn.Module) -> list[NormLayer]:
    """Every BatchNorm and GroupNorm layer of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.GroupNorm)]


def conv_norm_act(
    c_in: int,
    c_out: int,
    params: TrialParams,
    *,
    stride: int = 1,
    kernel_size: int = 3,
) -> nn.Sequential:
    """A ``kernel_size`` convolution, a normalisation layer and the activation, ordered by
    ``params.bn_placement`` (see the module's docstring); the norm's gamma/beta are initialised
    from ``params`` (``zero_last`` counts as ones here: it is about a whole net, see ``init_norms``).

    Args:
        c_in: Input channels.
        c_out: Output channels.
        params: The trial's params: activation, bn_placement, norm, bn_momentum, gamma/beta init.
        stride: The convolution's stride.
        kernel_size: The convolution's kernel size (padding keeps the size at stride 1).

    Raises:
        ValueError: a placement other than none, before_activation or after_activation.
    """
    placement = params.bn_placement
    if placement not in ("none", "before_activation", "after_activation"):
        raise ValueError(f"conv_norm_act: unknown bn_placement {placement!r}")
    with_norm = placement != "none" and params.norm != "none"
    before = with_norm and placement == "before_activation"
    # A bias right before a norm layer is cancelled by its mean subtraction.
    conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=not before)
    act = activation(params.activation)
    if not with_norm:
        return nn.Sequential(conv, act)
    norm = make_norm(params.norm, c_out, momentum=params.bn_momentum)
    block = nn.Sequential(conv, norm, act) if before else nn.Sequential(conv, act, norm)
    gamma = params.gamma_init or "ones"
    init_norm(norm, "ones" if gamma == "zero_last" else gamma, params.beta_init or "zeros")
    return block


def classifier_input(channels: int, params: TrialParams) -> list[nn.Module]:
    """Global average pool → flatten → [norm1d] (when ``params.bn_classifier``): what sits
    between the last feature map and the linear classifier of the deeper nets."""
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if params.bn_classifier and params.norm != "none":
        layers.append(make_norm(params.norm, channels, dims=1, momentum=params.bn_momentum))
    return layers


def init_norm(module: nn.Module, gamma: str, beta: str) -> None:
    """Set one normalisation layer's gamma (ones, zeros, small, normal) and beta (zeros, small,
    normal); a layer without affine parameters is left as it is."""
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    with torch.no_grad():
        if isinstance(weight, torch.Tensor):
            init_gamma(weight, gamma)
        if isinstance(bias, torch.Tensor):
            init_beta(bias, beta)


def init_norms(model: M, params: TrialParams) -> M:
    """Initialise every normalisation layer of ``model`` from ``params.gamma_init`` and
    ``params.beta_init`` (gamma 0 on the last layer only for ``zero_last``); returns ``model``."""
    layers = norm_layers(model)
    for i, m in enumerate(layers):
        gamma = params.gamma_init or "ones"
        if gamma == "zero_last":
            gamma = "zeros" if i == len(layers) - 1 else "ones"
        init_norm(m, gamma, params.beta_init or "zeros")
    return model


def init_gamma(w: torch.Tensor, how: str) -> None:
    """Fill a norm layer's scale in place: ones, zeros, small (0.1) or normal (N(1, 0.1²))."""
    if how == "ones":
        w.fill_(1.0)
    elif how == "zeros":
        w.zero_()
    elif how == "small":
        w.fill_(_SMALL)
    elif how == "normal":
        w.normal_(1.0, _NORMAL_STD)
    else:
        raise ValueError(f"unknown gamma_init {how!r}")


def init_beta(b: torch.Tensor, how: str) -> None:
    """Fill a norm layer's shift in place: zeros, small (0.1) or normal (N(0, 0.1²))."""
    if how == "zeros":
        b.zero_()
    elif how == "small":
        b.fill_(_SMALL)
    elif how == "normal":
        b.normal_(0.0, _NORMAL_STD)
    else:
        raise ValueError(f"unknown beta_init {how!r}")
