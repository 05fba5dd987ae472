"""The networks a trial trains, built from a frozen ``TrialParams``: the registry (``make_net``,
``build_model``) and the BN-CNN, the source article's net and ``--model bncnn`` (the default).

``--model`` names a built-in net (``bncnn``; ``plain`` in ``core/plain.py``; ``resnet`` in
``core/resnet.py``) or a user factory ``module:function`` (``core/factory.py``).

The BN-CNN:

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

import math
from dataclasses import dataclass

import torch
from torch import nn

from bnsearch.core.blocks import LEAKY_RELU_SLOPE, activation, init_beta, init_gamma, is_norm
from bnsearch.core.seeding import derive_seed, torch_generator
from bnsearch.core.space import TrialParams, model_family


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    # bncnn, plain, resnet, or a user factory "package.module:function" / "path/file.py:function"
    model: str = "bncnn"
    widths: tuple[int, int] = (32, 64)  # output channels of the BN-CNN's two conv layers
    leaky_relu_slope: float = LEAKY_RELU_SLOPE  # negative slope of leaky_relu
    # Order of the flattened features: "hwc" (fast, see above) or "chw" (models saved in format 1)
    feature_order: str = "hwc"


def make_net(
    params: TrialParams,
    *,
    in_shape: tuple[int, int, int],
    num_classes: int,
    cfg: ModelConfig | None = None,
) -> nn.Module:
    """The network ``cfg.model`` names, for ``params``, with weights from torch's global RNG.

    Raises:
        ConfigError: an unknown model, or a user factory that fails (``core/factory.py``).
    """
    cfg = cfg or ModelConfig()
    family = model_family(cfg.model)
    if family == "bncnn":
        return BNCNN(params, in_shape=in_shape, num_classes=num_classes, cfg=cfg)
    if family == "plain":
        from bnsearch.core.plain import PlainCNN

        return PlainCNN(params, in_shape=in_shape, num_classes=num_classes)
    if family == "resnet":
        from bnsearch.core.resnet import ResNet

        return ResNet(params, in_shape=in_shape, num_classes=num_classes)
    from bnsearch.core.factory import call_factory, load_factory

    return call_factory(load_factory(cfg.model), params, in_shape, num_classes)


class FlattenHWC(nn.Module):
    """``(N, C, H, W)`` → ``(N, H·W·C)``, channel fastest: a view of a channels_last tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


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
                layers.append(self._bn(nn.BatchNorm2d(c_out), params))
            act = activation(params.activation, leaky_relu_slope=cfg.leaky_relu_slope)
            pool = [nn.MaxPool2d(2)] if i == 0 else []
            if after:
                layers += [act, self._bn(nn.BatchNorm2d(c_out), params), *pool]
            else:
                layers += [*pool, act]  # pool first: the same function as act → pool
        layers.append(FlattenHWC() if cfg.feature_order == "hwc" else nn.Flatten())
        n_features = w2 * (height // 2) * (width // 2)
        if params.bn_classifier:
            layers.append(self._bn(nn.BatchNorm1d(n_features), params))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(n_features, num_classes)
        self.params = params
        self._init_bn(params)

    @staticmethod
    def _bn(bn: nn.modules.batchnorm._BatchNorm, params: TrialParams) -> nn.modules.batchnorm._BatchNorm:
        if params.bn_momentum is not None:
            bn.momentum = params.bn_momentum
        return bn

    def _init_bn(self, params: TrialParams) -> None:
        layers = self.bn_layers()
        for i, m in enumerate(layers):
            gamma = params.gamma_init or "ones"
            if gamma == "zero_last":
                # Goyal et al.'s trick, in a net without skip paths: only the last BN starts at 0.
                gamma = "zeros" if i == len(layers) - 1 else "ones"
            with torch.no_grad():
                init_gamma(m.weight, gamma)
                init_beta(m.bias, params.beta_init or "zeros")

    def bn_layers(self) -> list[nn.modules.batchnorm._BatchNorm]:
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_model(
    params: TrialParams,
    *,
    in_shape: tuple[int, int, int],
    num_classes: int,
    seed: int,
    cfg: ModelConfig | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Build the network ``cfg.model`` names with weights drawn from ``seed`` (the global RNG
    is left as it was).

    Args:
        params: The trial's configuration.
        in_shape: ``(channels, height, width)`` of one input image.
        num_classes: Number of output classes.
        seed: Seed for the weight initialisation.
        cfg: Which network (``model``), the BN-CNN's widths, other architecture constants.
        device: Where the model's parameters live.

    Returns:
        The model on ``device``, in training mode.

    Raises:
        ConfigError: an unknown model, or a user factory that fails.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_net(params, in_shape=in_shape, num_classes=num_classes, cfg=cfg)
    return model.to(device)


def param_groups(model: nn.Module, *, weight_decay: float, decay_bn_params: bool = False) -> list[dict[str, object]]:
    """SGD parameter groups: conv/linear weights decayed; norm gamma/beta and biases not.

    Every parameter lands in exactly one group. ``decay_bn_params=True`` moves the norm layers'
    (BatchNorm, GroupNorm) gamma/beta into the decayed group (a modelling choice recorded with
    the study).

    Returns:
        ``[{"name": "decay", ...}, {"name": "no_decay", ...}]`` ready for ``torch.optim.SGD``.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in model.modules():
        is_bn = is_norm(module)
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


def shared_init(model: nn.Module, seed: int) -> None:
    """Redraw every conv/linear layer of ``model`` from its own stream, ``derive_seed(seed, "init", i)``,
    with PyTorch's default distribution (uniform ±1/√fan_in), for paired comparisons.

    ``build_model`` draws the weights from one stream, so nets with different layers (a conv
    bias is dropped before BN) would get different conv weights from one seed; redrawn this
    way, the layers two configurations share start equal (``findings``, ``best --confirm``).
    """
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        for i, m in enumerate(layers):
            bound = 1.0 / math.sqrt(m.weight[0].numel())
            m.weight.uniform_(-bound, bound, generator=torch_generator(derive_seed(seed, "init", i, "weight")))
            if m.bias is not None:
                m.bias.uniform_(-bound, bound, generator=torch_generator(derive_seed(seed, "init", i, "bias")))
