"""The search space: default ranges, TOML overrides, validation, and ``suggest(trial)``.

``SearchSpace.suggest`` is the only place in bnsearch that calls ``trial.suggest_*``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnsearch.errors import SpaceError

if TYPE_CHECKING:
    import optuna

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
BN_PLACEMENTS = ("none", "before_activation", "after_activation")
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

    @property
    def has_bn(self) -> bool:
        return has_bn(self.bn_placement, self.bn_classifier)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def has_bn(bn_placement: str, bn_classifier: bool) -> bool:
    """Whether a network with these settings contains any BatchNorm layer."""
    return bn_placement != "none" or bool(bn_classifier)


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
    "bn_placement": _Rule(str, BN_PLACEMENTS),
    "epochs": _Rule(int, min_value=1),
    "gamma_init": _Rule(str, GAMMA_INIT_CHOICES, conditional=True),
    "lr": _Rule(float, min_value=0.0),
    "momentum": _Rule(float, min_value=0.0, max_value=1.0),
    "weight_decay": _Rule(float, min_value=0.0),
}
PARAM_NAMES: tuple[str, ...] = tuple(sorted(_RULES))
# Suggest BN structure first: gamma/beta are sampled only when it puts some BN in the net.
_SUGGEST_ORDER = ("bn_placement", "bn_classifier") + tuple(
    n for n in PARAM_NAMES if n not in ("bn_placement", "bn_classifier")
)

DEFAULT_EPOCHS = 4
DEFAULT_BATCH_SIZE = 32
DEFAULT_MOMENTUM = 0.9


def default_params() -> dict[str, Param]:
    """The default search space: the training and BN settings every search explores."""
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

    @classmethod
    def default(cls) -> SearchSpace:
        return cls(default_params())

    @classmethod
    def from_toml(cls, path: str | Path) -> SearchSpace:
        """Read a TOML file that fixes, narrows or extends the default space.

        Each top-level key names a parameter. A bare value fixes it (``epochs = 3``); a
        table sets a range (``low``, ``high``, optional ``log`` and ``step``), a list of
        ``choices``, or a fixed ``value``. Parameters not named keep their defaults.

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
            return cls.from_mapping(raw)
        except SpaceError as e:
            raise SpaceError(f"space file {path}: {e}") from None

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any]) -> SearchSpace:
        """Apply ``overrides`` (the TOML structure) on top of the defaults."""
        params = default_params()
        for name in sorted(overrides):
            params[name] = _parse_param(name, overrides[name])
        return cls(params)

    def with_fixed(self, **values: Scalar | None) -> SearchSpace:
        """A copy with the given parameters fixed (``None`` values are ignored)."""
        params = dict(self.params)
        for name, value in values.items():
            if value is not None:
                params[name] = _parse_param(name, value)
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
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSpace:
        """Rebuild a space from its stored ``to_dict()`` form (the inverse of ``to_dict``)."""
        return cls.from_mapping({k: {kk: vv for kk, vv in v.items() if kk != "type"} for k, v in d.items()})

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
        trials without BN carry no meaningless gamma/beta values.
        """
        values: dict[str, Any] = {}
        for name in _SUGGEST_ORDER:
            if _RULES[name].conditional and not has_bn(str(values["bn_placement"]), bool(values["bn_classifier"])):
                values[name] = None
                continue
            values[name] = _suggest_one(trial, name, self.params[name])
        return TrialParams(**values)

    def fixed_params(self, **values: Any) -> TrialParams:
        """TrialParams from explicit values for the searchable params (no Optuna needed)."""
        merged: dict[str, Any] = {}
        for name in _SUGGEST_ORDER:
            p = self.params[name]
            if _RULES[name].conditional and not has_bn(str(merged["bn_placement"]), bool(merged["bn_classifier"])):
                merged[name] = None
            elif name in values:
                merged[name] = values[name]
            elif isinstance(p, FixedParam):
                merged[name] = p.value
            else:
                raise SpaceError(f"no value given for searchable parameter '{name}'")
        return TrialParams(**merged)

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


def _parse_param(name: str, raw: Any) -> Param:
    if name not in _RULES:
        raise SpaceError(f"unknown parameter '{name}'; known parameters: {', '.join(PARAM_NAMES)}")
    rule = _RULES[name]
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
