"""The search space: default ranges, TOML overrides, validation, and ``suggest(trial)``.

``SearchSpace.suggest`` is the only place in bnsearch that calls ``trial.suggest_*``.

Each network family has its own default space (``default_params(family)``): ``bncnn`` the
article's net, exactly as before there were other nets; ``plain`` and ``resnet`` add ``depth``,
``width`` and ``norm`` (fixed by default, searchable through the space file); ``user`` (a
``--model module:function`` factory) is ``bncnn``'s space, whose file may also set ``norm``,
``depth`` and ``width`` (for the factory to use) and declare extra parameters, which reach the
factory untouched in ``TrialParams.extra``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnsearch.errors import ConfigError, SpaceError

if TYPE_CHECKING:
    import optuna

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
BN_PLACEMENTS = ("none", "before_activation", "after_activation")
# A residual block's placements: He et al.'s original block (BN after each conv, the activation
# after the addition) and their pre-activation block (BN → act → conv, nothing after the addition).
RESNET_PLACEMENTS = ("none", "post_activation", "pre_activation")
NORMS = ("batch", "group", "none")  # BatchNorm, GroupNorm, no normalisation layer
BUILTIN_MODELS = ("bncnn", "plain", "resnet")  # --model names; anything with a ':' is a user factory
FAMILIES = (*BUILTIN_MODELS, "user")  # whose default space a SearchSpace starts from
GAMMA_INITS = ("ones", "zeros", "small", "normal")  # the default space's choices
# Also accepted (a space file or `bnsearch findings` names it; not in the default space, so
# default searches sample what they always did): gamma 0 on the last BN layer only, 1 elsewhere.
GAMMA_INIT_CHOICES = (*GAMMA_INITS, "zero_last")
BETA_INITS = ("zeros", "small", "normal")

Scalar = bool | int | float | str


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialParams:
    """One fully resolved configuration: what a trial trains."""

    lr: float  # SGD learning rate
    weight_decay: float  # L2 penalty on conv/linear weights
    momentum: float  # SGD momentum
    batch_size: int  # examples per SGD step
    epochs: int  # passes over the training split
    activation: str  # one of ACTIVATIONS
    bn_placement: str  # one of BN_PLACEMENTS
    bn_classifier: bool  # BatchNorm1d on the flattened features before the classifier
    gamma_init: str | None = None  # one of GAMMA_INIT_CHOICES; None when the net has no BN
    beta_init: str | None = None  # one of BETA_INITS; None when the net has no BN
    # The deeper nets' structure (None for bncnn, whose structure is fixed):
    depth: int | None = None  # conv layers (plain) or 6n+2 layers (resnet)
    width: int | None = None  # channels of the first stage; each later stage doubles it
    norm: str | None = None  # one of NORMS; None means batch
    bn_momentum: float | None = None  # BatchNorm running-stats momentum; None: torch's 0.1
    extra: dict[str, Scalar] = field(default_factory=dict)  # a user factory's own params

    @property
    def has_bn(self) -> bool:
        return has_bn(self.bn_placement, self.bn_classifier, self.norm)

    def to_dict(self) -> dict[str, Any]:
        """The params as JSON-able values; fields a net does not use (None, no extras) are left
        out, so a ``bncnn`` trial stores exactly the keys it always did."""
        d = asdict(self)
        for name in _OPTIONAL_FIELDS:
            if d[name] is None or d[name] == {}:
                del d[name]
        return d


_OPTIONAL_FIELDS = ("depth", "width", "norm", "bn_momentum", "extra")


def has_bn(bn_placement: str, bn_classifier: bool, norm: str | None = None) -> bool:
    """Whether a network with these settings contains any normalisation layer."""
    return norm != "none" and (bn_placement != "none" or bool(bn_classifier))


@dataclass(frozen=True, slots=True)
class FloatParam:
    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True, slots=True)
class IntParam:
    low: int
    high: int
    log: bool = False
    step: int = 1


@dataclass(frozen=True, slots=True)
class CategoricalParam:
    choices: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class FixedParam:
    value: Scalar


Param = FloatParam | IntParam | CategoricalParam | FixedParam


@dataclass(frozen=True, slots=True)
class _Rule:
    """What values a parameter may take, to validate overrides."""

    kind: type  # float, int, bool or str
    choices: tuple[Scalar, ...] | None = None  # allowed values for str/bool params
    min_value: float | None = None  # inclusive lower bound
    max_value: float | None = None  # exclusive upper bound
    conditional: bool = False  # only sampled when the network has BN


_RULES: dict[str, _Rule] = {
    "activation": _Rule(str, ACTIVATIONS),
    "batch_size": _Rule(int, min_value=1),
    "beta_init": _Rule(str, BETA_INITS, conditional=True),
    "bn_classifier": _Rule(bool, (False, True)),
    "bn_momentum": _Rule(float, min_value=0.0, max_value=1.0),
    "bn_placement": _Rule(str, BN_PLACEMENTS),
    "epochs": _Rule(int, min_value=1),
    "gamma_init": _Rule(str, GAMMA_INIT_CHOICES, conditional=True),
    "lr": _Rule(float, min_value=0.0),
    "momentum": _Rule(float, min_value=0.0, max_value=1.0),
    "weight_decay": _Rule(float, min_value=0.0),
}
# The deeper nets' structure params, on top of _RULES.
_STRUCTURE_RULES: dict[str, _Rule] = {
    "depth": _Rule(int, min_value=2, max_value=21),
    "norm": _Rule(str, NORMS),
    "width": _Rule(int, min_value=1),
}
PARAM_NAMES: tuple[str, ...] = tuple(sorted(_RULES))
# Suggest the normalisation structure first: gamma/beta are sampled only when it puts some
# normalisation layer in the net. (bncnn's spaces have no norm, so their order is what it was.)
_STRUCTURE_FIRST = ("bn_placement", "bn_classifier", "norm")

DEFAULT_EPOCHS = 4
DEFAULT_BATCH_SIZE = 32
DEFAULT_MOMENTUM = 0.9
# Defaults of the deeper nets, sized so that `bnsearch run --model plain|resnet` (30 trials of
# 4 epochs on mnist5k, percentile pruning) takes a few minutes on 2 CPU cores (benchmarks/models.py).
PLAIN_DEPTH = 8
PLAIN_WIDTH = 16
RESNET_DEPTH = 8
RESNET_WIDTH = 16
RESNET_DEPTHS = (8, 14, 20)  # 6n+2 depths, for messages and examples (any 6n+2 ≥ 8 builds)


def model_family(model: str) -> str:
    """The space family of a ``--model`` value: the built-in net's name, or ``user`` for a
    factory ``module:function`` / ``path/file.py:function``.

    Raises:
        ConfigError: neither a built-in name nor a factory reference.
    """
    where, _, fn = model.strip().rpartition(":")
    if model in BUILTIN_MODELS:
        return model
    if where and fn.isidentifier():
        return "user"
    raise ConfigError(
        f"--model must be a built-in net or package.module:function, got '{model}'; choose one of: "
        f"{', '.join(BUILTIN_MODELS)}, or module:function / path/file.py:function"
    )


def _rules(family: str) -> dict[str, _Rule]:
    """The parameters a space of ``family`` may name, with what values they may take."""
    if family == "bncnn":
        return _RULES
    rules = {**_RULES, **_STRUCTURE_RULES}
    if family == "user":  # the factory decides what depth and width mean
        rules["depth"] = _Rule(int, min_value=1)
    elif family == "resnet":
        rules["bn_placement"] = _Rule(str, RESNET_PLACEMENTS)
        rules["depth"] = _Rule(int, min_value=8)
    return rules


def default_params(family: str = "bncnn") -> dict[str, Param]:
    """The default search space of a network family: the training and BN settings every search
    explores, and (plain, resnet) the structure, fixed.

    Raises:
        SpaceError: ``family`` is not one of FAMILIES.
    """
    if family not in FAMILIES:
        raise SpaceError(f"unknown model family '{family}'; choose one of: {', '.join(FAMILIES)}")
    params = _bncnn_params()
    if family == "plain":
        params |= {"depth": FixedParam(PLAIN_DEPTH), "width": FixedParam(PLAIN_WIDTH), "norm": FixedParam("batch")}
    elif family == "resnet":
        params |= {
            "bn_placement": CategoricalParam(RESNET_PLACEMENTS),
            # Goyal et al.'s zero-gamma trick is about residual branches: searched by default here.
            "gamma_init": CategoricalParam(GAMMA_INIT_CHOICES),
            "depth": FixedParam(RESNET_DEPTH),
            "width": FixedParam(RESNET_WIDTH),
            "norm": FixedParam("batch"),
        }
    return params


def _bncnn_params() -> dict[str, Param]:
    return {
        "lr": FloatParam(1e-4, 1.0, log=True),
        "weight_decay": FloatParam(1e-6, 1e-2, log=True),
        "activation": CategoricalParam(ACTIVATIONS),
        "bn_placement": CategoricalParam(BN_PLACEMENTS),
        "bn_classifier": CategoricalParam((False, True)),
        "gamma_init": CategoricalParam(GAMMA_INITS),
        "beta_init": CategoricalParam(BETA_INITS),
        "momentum": FixedParam(DEFAULT_MOMENTUM),
        "batch_size": FixedParam(DEFAULT_BATCH_SIZE),
        "epochs": FixedParam(DEFAULT_EPOCHS),
    }


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Every tunable setting, each searchable (float/int/categorical) or fixed.

    Build with ``SearchSpace.default()``, ``SearchSpace.from_toml(path)`` or
    ``SearchSpace.from_mapping(...)``; all validate and raise ``SpaceError``.
    """

    params: Mapping[str, Param] = field(default_factory=default_params)
    family: str = "bncnn"  # the network family whose defaults and rules apply (one of FAMILIES)

    @classmethod
    def default(cls, family: str = "bncnn") -> SearchSpace:
        return cls(default_params(family), family)

    @classmethod
    def from_toml(cls, path: str | Path, *, family: str = "bncnn") -> SearchSpace:
        """Read a TOML file that fixes, narrows or extends the default space.

        Each top-level key names a parameter. A bare value fixes it (``epochs = 3``); a
        table sets a range (``low``, ``high``, optional ``log`` and ``step``), a list of
        ``choices``, or a fixed ``value``. Parameters not named keep their defaults. For the
        ``user`` family, a name bnsearch does not know declares an extra parameter (a range of
        ints when low and high are whole numbers, else of floats).

        Raises:
            SpaceError: the file is missing, is not TOML, or describes an invalid space.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise SpaceError(f"cannot read space file {path}: {e.strerror or e}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise SpaceError(f"space file {path} is not valid TOML: {e}") from None
        try:
            return cls.from_mapping(raw, family=family)
        except SpaceError as e:
            raise SpaceError(f"space file {path}: {e}") from None

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any], *, family: str = "bncnn") -> SearchSpace:
        """Apply ``overrides`` (the TOML structure) on top of ``family``'s defaults."""
        params = default_params(family)
        for name in sorted(overrides):
            params[name] = _parse_param(name, overrides[name], family)
        if family == "resnet":
            _check_resnet_depth(params["depth"])
        return cls(params, family)

    def with_fixed(self, **values: Scalar | None) -> SearchSpace:
        """A copy with the given parameters fixed (``None`` values are ignored)."""
        params = dict(self.params)
        for name, value in values.items():
            if value is not None:
                params[name] = _parse_param(name, value, self.family)
        return replace(self, params=params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description, stable across runs (stored on the study, compared on resume)."""
        out: dict[str, Any] = {}
        for name in sorted(self.params):
            p = self.params[name]
            if isinstance(p, FixedParam):
                out[name] = {"value": p.value}
            elif isinstance(p, CategoricalParam):
                out[name] = {"choices": list(p.choices)}
            else:
                d: dict[str, Any] = {"low": p.low, "high": p.high, "log": p.log}
                if p.step is not None and not (isinstance(p, IntParam) and p.step == 1):
                    d["step"] = p.step
                d["type"] = "int" if isinstance(p, IntParam) else "float"
                out[name] = d
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, family: str = "bncnn") -> SearchSpace:
        """Rebuild a space from its stored ``to_dict()`` form (the inverse of ``to_dict``)."""
        return cls.from_mapping(
            {k: {kk: vv for kk, vv in v.items() if kk != "type"} for k, v in d.items()}, family=family
        )

    @property
    def max_epochs(self) -> int:
        """The most epochs a trial of this space trains (a pruner's resource budget)."""
        p = self.params["epochs"]
        if isinstance(p, FixedParam):
            return int(p.value)
        if isinstance(p, IntParam):
            return p.high
        assert isinstance(p, CategoricalParam)
        return max(int(c) for c in p.choices)

    @property
    def searchable(self) -> list[str]:
        """Names of the parameters a sampler chooses, sorted."""
        return [n for n in sorted(self.params) if not isinstance(self.params[n], FixedParam)]

    def suggest(self, trial: optuna.trial.BaseTrial) -> TrialParams:
        """Ask ``trial`` for every searchable parameter; fill in the fixed ones.

        gamma_init and beta_init are only suggested when the sampled network has BN, so
        trials without BN carry no meaningless gamma/beta values. A user factory's extra
        parameters come last, in name order.
        """
        values: dict[str, Any] = {}
        for name in self._order():
            if self._skipped(name, values):
                values[name] = None
                continue
            values[name] = _suggest_one(trial, name, self.params[name])
        return self._trial_params(values)

    def fixed_params(self, **values: Any) -> TrialParams:
        """TrialParams from explicit values for the searchable params (no Optuna needed)."""
        merged: dict[str, Any] = {}
        for name in self._order():
            p = self.params[name]
            if self._skipped(name, merged):
                merged[name] = None
            elif name in values:
                merged[name] = values[name]
            elif isinstance(p, FixedParam):
                merged[name] = p.value
            else:
                raise SpaceError(f"no value given for searchable parameter '{name}'")
        return self._trial_params(merged)

    def probe_params(self) -> TrialParams:
        """One valid configuration of this space (each range's low end, each first choice): what
        a user factory is tried with before a study is created."""
        values: dict[str, Any] = {}
        for name, p in self.params.items():
            if isinstance(p, CategoricalParam):
                values[name] = p.choices[0]
            elif isinstance(p, FloatParam | IntParam):
                values[name] = p.low
        return self.fixed_params(**values)

    def _order(self) -> list[str]:
        first = [n for n in _STRUCTURE_FIRST if n in self.params]
        known = [n for n in sorted(self.params) if n in _rules(self.family) and n not in first]
        extras = [n for n in sorted(self.params) if n not in _rules(self.family)]
        return first + known + extras

    def _skipped(self, name: str, values: Mapping[str, Any]) -> bool:
        rule = _rules(self.family).get(name)
        return (
            rule is not None
            and rule.conditional
            and not has_bn(str(values["bn_placement"]), bool(values["bn_classifier"]), values.get("norm"))
        )

    def _trial_params(self, values: dict[str, Any]) -> TrialParams:
        rules = _rules(self.family)
        extra = {n: values.pop(n) for n in list(values) if n not in rules}
        return TrialParams(**values, extra=extra)

    def grid(self, points_per_range: int = 3) -> dict[str, list[Scalar]]:
        """A finite grid over the searchable parameters, for Optuna's GridSampler."""
        grid: dict[str, list[Scalar]] = {}
        for name in self.searchable:
            p = self.params[name]
            if isinstance(p, CategoricalParam):
                grid[name] = list(p.choices)
            elif isinstance(p, FloatParam):
                pts = _range_points(p.low, p.high, p.log, points_per_range)
                grid[name] = pts if p.step is None else sorted({_on_step(float(v), p.low, p.high, p.step) for v in pts})
            elif isinstance(p, IntParam):
                pts = _range_points(p.low, p.high, p.log, points_per_range)
                grid[name] = sorted({int(_on_step(float(v), p.low, p.high, p.step)) for v in pts})
        return grid


def _on_step(v: float, low: float, high: float, step: float) -> float:
    """``v`` moved onto the grid ``low + k·step`` that Optuna samples (whose top is ≤ high)."""
    top = math.floor((high - low) / step + 1e-9)
    k = min(top, max(0, round((v - low) / step)))
    return round(low + k * step, 12)


def _range_points(low: float, high: float, log: bool, n: int) -> list[Scalar]:
    if n == 1 or low == high:
        return [low]
    if log:
        a, b = math.log(low), math.log(high)
        inner = [math.exp(a + (b - a) * i / (n - 1)) for i in range(1, n - 1)]
    else:
        inner = [low + (high - low) * i / (n - 1) for i in range(1, n - 1)]
    # Exact endpoints: exp(log(high)) can land a hair outside the range.
    return [low, *inner, high]


def _suggest_one(trial: optuna.trial.BaseTrial, name: str, p: Param) -> Any:
    if isinstance(p, FixedParam):
        return p.value
    if isinstance(p, CategoricalParam):
        return trial.suggest_categorical(name, list(p.choices))
    if isinstance(p, FloatParam):
        return trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
    return trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step)


_TABLE_KEYS = {"low", "high", "log", "step", "choices", "value"}


def _check_resnet_depth(p: Param) -> None:
    depths = [p.value] if isinstance(p, FixedParam) else p.choices if isinstance(p, CategoricalParam) else []
    if isinstance(p, IntParam):
        raise SpaceError(f"depth: a resnet's depth is 6n+2; give choices = [...] (e.g. {list(RESNET_DEPTHS)})")
    for d in depths:
        if (int(d) - 2) % 6:
            raise SpaceError(f"depth: a resnet's depth must be 6n+2 (8, 14, 20, ...), got {d}")


def _extra_rule(name: str, raw: Any) -> _Rule:
    """The rule of a user factory's own parameter, read off the values its space file gives."""
    values: list[Any] = []
    if isinstance(raw, Mapping):
        values = [raw[k] for k in ("low", "high", "value") if k in raw]
        if isinstance(raw.get("choices"), list):
            values += raw["choices"]
    else:
        values = [raw]
    if values and all(isinstance(v, bool) for v in values):
        return _Rule(bool, (False, True))
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        ranged = isinstance(raw, Mapping) and "low" in raw
        whole = all(isinstance(v, int) for v in values) and not isinstance(raw.get("step", 1) if ranged else 1, float)
        return _Rule(int if whole else float)
    if values and all(isinstance(v, str) for v in values):
        return _Rule(str, tuple(values))
    raise SpaceError(f"{name}: an extra parameter must be numbers, true/false or strings, got {raw!r}")


def _parse_param(name: str, raw: Any, family: str = "bncnn") -> Param:
    rules = _rules(family)
    if name not in rules:
        if family != "user":
            model = "" if family == "bncnn" else f" for model {family}"
            raise SpaceError(f"unknown parameter '{name}'{model}; known parameters: {', '.join(sorted(rules))}")
        rule = _extra_rule(name, raw)
    else:
        rule = rules[name]
    if not isinstance(raw, Mapping):
        return FixedParam(_check_value(name, rule, raw))
    unknown = sorted(set(raw) - _TABLE_KEYS)
    if unknown:
        raise SpaceError(
            f"{name}: unknown key '{unknown[0]}'; use low/high (with optional log, step), choices, or value"
        )
    given = {k for k in ("value", "choices", "low") if k in raw} | ({"low"} if "high" in raw else set())
    if len(given) != 1:
        raise SpaceError(f"{name}: give exactly one of: value, choices, or low and high")
    if "value" in raw:
        return FixedParam(_check_value(name, rule, raw["value"]))
    if "choices" in raw:
        choices = raw["choices"]
        if not isinstance(choices, list):
            raise SpaceError(f"{name}: choices must be a list, got {choices!r}")
        if not choices:
            raise SpaceError(f"{name}: choices is empty; give at least one value")
        checked = tuple(_check_value(name, rule, c) for c in choices)
        if len(set(checked)) != len(checked):
            raise SpaceError(f"{name}: choices has duplicates: {list(checked)}")
        return CategoricalParam(checked)
    return _parse_range(name, rule, raw)


def _parse_range(name: str, rule: _Rule, raw: Mapping[str, Any]) -> Param:
    if rule.kind not in (int, float):
        raise SpaceError(f"{name}: is categorical; give choices = [...] instead of low/high")
    if "low" not in raw or "high" not in raw:
        raise SpaceError(f"{name}: a range needs both low and high")
    low = _check_number(name, rule, raw["low"])
    high = _check_number(name, rule, raw["high"])
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{name}: log must be true or false, got {log!r}")
    if low > high:
        raise SpaceError(f"{name}: low > high ({low} > {high})")
    if log and low <= 0:
        raise SpaceError(f"{name}: a log range must have low > 0, got low = {low}")
    step = raw.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise SpaceError(f"{name}: step must be a positive number, got {step!r}")
        if log:
            raise SpaceError(f"{name}: step and log cannot be combined")
    if rule.kind is int:
        if step is not None and not isinstance(step, int):
            raise SpaceError(f"{name}: step must be an integer, got {step!r}")
        return IntParam(int(low), int(high), log=log, step=int(step or 1))
    return FloatParam(float(low), float(high), log=log, step=None if step is None else float(step))


def _check_number(name: str, rule: _Rule, value: Any) -> float:
    checked = _check_value(name, rule, value)
    assert isinstance(checked, int | float)  # ranges are only parsed for int/float rules
    return checked


def _check_value(name: str, rule: _Rule, value: Any) -> Scalar:
    if isinstance(value, Mapping | list):
        raise SpaceError(f"{name}: expected a single value, got {value!r}")
    if rule.kind is bool:
        if not isinstance(value, bool):
            raise SpaceError(f"{name}: must be true or false, got {value!r}")
        return value
    if rule.kind is str:
        if value not in (rule.choices or ()):
            raise SpaceError(
                f"{name}: unknown choice {value!r}; choose from: {', '.join(map(str, rule.choices or ()))}"
            )
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpaceError(f"{name}: must be a number, got {value!r}")
    if rule.kind is int:
        if not float(value).is_integer():
            raise SpaceError(f"{name}: must be an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise SpaceError(f"{name}: must be finite, got {value!r}")
    if rule.min_value is not None and value < rule.min_value:
        raise SpaceError(f"{name}: must be ≥ {rule.min_value:g}, got {value!r}")
    if rule.max_value is not None and value >= rule.max_value:
        raise SpaceError(f"{name}: must be < {rule.max_value:g}, got {value!r}")
    if name in ("lr",) and value <= 0:
        raise SpaceError(f"{name}: must be > 0, got {value!r}")
    return value
