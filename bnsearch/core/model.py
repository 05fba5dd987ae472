"""The BN-CNN every trial trains (the network of the source article), built from a frozen ``TrialParams``.

```
input → conv3x3(w1) → [BN] → act → [BN] → maxpool2
      → conv3x3(w2) → [BN] → act → [BN]
      → flatten → [BN1d] → linear(num_classes)
```

Speed: every activation here is monotone non-decreasing, so ``act(maxpool(x)) == maxpool(act(x))``
(values and gradients, ties aside). Where the activation directly precedes the max-pool (BN
before the activation, or no BN) the pool runs first and the activation sees a quarter of the
elements: the same network, 8–10% less time per epoch (benchmarks/README.md).

The feature map is flattened in (H, W, C) order: for a channels_last batch that is a view, so
nothing is copied and the gradient flows back channels_last. NCHW flattening copied the map
and handed BN's backward a gradient in the other layout, which made it several times slower
(epochs 10–30% slower in bf16). It is a fixed permutation of the classifier's inputs, so the
same family of networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bnsearch.core.space import TrialParams

_SMALL = 0.1  # value of the "small" gamma/beta init
_NORMAL_STD = 0.1  # std of the "normal" gamma/beta init


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    widths: tuple[int, int] = (32, 64)  # output channels of the two conv layers
    leaky_relu_slope: float = 0.01  # negative slope of leaky_relu
    # Order of the flattened features: "hwc" (fast, see above) or "chw" (models saved in format 1)
    feature_order: str = "hwc"


class FlattenHWC(nn.Module):
    """``(N, C, H, W)`` → ``(N, H·W·C)``, channel fastest: a view of a channels_last tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


def _activation(name: str, cfg: ModelConfig) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(cfg.leaky_relu_slope)
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"unknown activation {name!r}")


class BNCNN(nn.Module):
    """Two conv blocks and a linear classifier, with BN where ``params`` says.

    ``features`` holds every layer up to the flattened (optionally normalised) vector, in
    order, so the position of each BN layer can be read off ``features``.
    """

    def __init__(
        self,
        params: TrialParams,
        *,
        in_shape: tuple[int, int, int],
        num_classes: int,
        cfg: ModelConfig | None = None,
    ) -> None:
        super().__init__()
        cfg = cfg or ModelConfig()
        channels, height, width = in_shape
        w1, w2 = cfg.widths
        before = params.bn_placement == "before_activation"
        after = params.bn_placement == "after_activation"

        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(((channels, w1), (w1, w2))):
            # A bias right before BN is cancelled by BN's mean subtraction.
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=not before))
            if before:
                layers.append(nn.BatchNorm2d(c_out))
            act = _activation(params.activation, cfg)
            pool = [nn.MaxPool2d(2)] if i == 0 else []
            if after:
                layers += [act, nn.BatchNorm2d(c_out), *pool]
            else:
                layers += [*pool, act]  # pool first: the same function as act → pool
        layers.append(FlattenHWC() if cfg.feature_order == "hwc" else nn.Flatten())
        n_features = w2 * (height // 2) * (width // 2)
        if params.bn_classifier:
            layers.append(nn.BatchNorm1d(n_features))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(n_features, num_classes)
        self.params = params
        self._init_bn(params)

    def _init_bn(self, params: TrialParams) -> None:
        layers = self.bn_layers()
        for i, m in enumerate(layers):
            gamma = params.gamma_init or "ones"
            if gamma == "zero_last":
                # Goyal et al.'s trick, in a net without skip paths: only the last BN starts at 0.
                gamma = "zeros" if i == len(layers) - 1 else "ones"
            with torch.no_grad():
                _init_gamma(m.weight, gamma)
                _init_beta(m.bias, params.beta_init or "zeros")

    def bn_layers(self) -> list[nn.modules.batchnorm._BatchNorm]:
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _init_gamma(w: torch.Tensor, how: str) -> None:
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


def _init_beta(b: torch.Tensor, how: str) -> None:
    if how == "zeros":
        b.zero_()
    elif how == "small":
        b.fill_(_SMALL)
    elif how == "normal":
        b.normal_(0.0, _NORMAL_STD)
    else:
        raise ValueError(f"unknown beta_init {how!r}")


def build_model(
    params: TrialParams,
    *,
    in_shape: tuple[int, int, int],
    num_classes: int,
    seed: int,
    cfg: ModelConfig | None = None,
    device: torch.device | str = "cpu",
) -> BNCNN:
    """Build a ``BNCNN`` with weights drawn from ``seed`` (the global RNG is left as it was).

    Args:
        params: The trial's configuration.
        in_shape: ``(channels, height, width)`` of one input image.
        num_classes: Number of output classes.
        seed: Seed for the weight initialisation.
        cfg: Widths and other architecture constants.
        device: Where the model's parameters live.

    Returns:
        The model on ``device``, in training mode.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BNCNN(params, in_shape=in_shape, num_classes=num_classes, cfg=cfg)
    return model.to(device)


def param_groups(model: nn.Module, *, weight_decay: float, decay_bn_params: bool = False) -> list[dict[str, object]]:
    """SGD parameter groups: conv/linear weights decayed; BN gamma/beta and biases not.

    Every parameter lands in exactly one group. ``decay_bn_params=True`` moves BN gamma/beta
    into the decayed group (a modelling choice recorded with the study).

    Returns:
        ``[{"name": "decay", ...}, {"name": "no_decay", ...}]`` ready for ``torch.optim.SGD``.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in model.modules():
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        for pname, p in module.named_parameters(recurse=False):
            if (is_bn and decay_bn_params) or (not is_bn and pname == "weight"):
                decay.append(p)
            else:
                no_decay.append(p)
    assert len(decay) + len(no_decay) == len(list(model.parameters()))
    return [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]
