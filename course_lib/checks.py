"""Input checks shared by the whole library: one helper per kind of input, one error type per kind of mistake.

- ``TypeError``  -- the argument has the wrong *type* (a list where a tensor is needed, a float where an
  integer count is needed, an integer tensor of images);
- ``ValueError`` -- the type is right but the *value* is not (eps < 0, sigma <= 0, alpha outside its interval,
  images outside [0, 1], a wrong shape, NaN).

Every public function of course_lib checks its inputs with these helpers before doing any work, so a wrong call
fails loudly with a message that says what was expected, never with a silently wrong number.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

Domain = tuple[float, float] | None
IMAGE_DOMAIN: Domain = (0.0, 1.0)


def check_tensor(x: object, name: str = "x", domain: Domain = None, dim: int | None = None) -> None:
    """A floating-point tensor, finite, with ``dim`` dimensions (any if None), inside ``domain`` (if given)."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch tensor, got {type(x).__name__} "
                        f"{getattr(x, 'dtype', '')}".rstrip())
    if dim is not None and x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimensions, got shape {tuple(x.shape)}")
    if x.numel() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if domain is not None and x.numel():
        low, high = domain
        if x.min() < low or x.max() > high:
            raise ValueError(f"{name} must lie in [{low:g}, {high:g}] (images are in [0, 1]; normalization happens "
                             f"inside the model); got range [{x.min().item():.3g}, {x.max().item():.3g}]")


def check_images(x: object, name: str = "x") -> None:
    """A batch of images: a floating N x C x H x W tensor with values in [0, 1]."""
    if torch.is_tensor(x) and x.is_floating_point() and x.dim() != 4:
        raise ValueError(f"{name} must have shape N x C x H x W, got {tuple(x.shape)}")
    check_tensor(x, name, IMAGE_DOMAIN)


def check_inputs(x: object, domain: Domain = IMAGE_DOMAIN, name: str = "x") -> None:
    """Model inputs: images (N x C x H x W in [0, 1]) when ``domain`` is the image domain, else any floating
    tensor inside ``domain`` (``None``: noisy images that may leave [0, 1], 2-D points of the toy problem)."""
    if domain == IMAGE_DOMAIN:
        check_images(x, name)
    else:
        check_tensor(x, name, domain)


def check_labels(y: object, n: int, name: str = "y") -> None:
    """One integer label per example: an int64 tensor of shape (n,)."""
    if not torch.is_tensor(y) or y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer torch tensor of labels, got {type(y).__name__} "
                        f"{getattr(y, 'dtype', '')}".rstrip())
    if tuple(y.shape) != (n,):  # an N x 1 y would broadcast against N predictions into an N x N table
        raise ValueError(f"{name} must hold one label per example: {n} examples, got shape {tuple(y.shape)}")


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bools are not counts); returns it as an ``int``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(value: object, name: str) -> float:
    """A real number (not a bool); returns it as a ``float``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_eps(eps: object, name: str = "eps") -> float:
    """A finite radius >= 0 (inf would give inf * 0 = NaN pixels)."""
    eps = check_real(eps, name)
    if not 0 <= eps < math.inf:  # also rejects NaN
        raise ValueError(f"{name} must be finite and >= 0, got {eps}")
    return eps


def check_positive(value: object, name: str) -> float:
    """A finite number > 0 (e.g. sigma, a learning rate, a step size)."""
    value = check_real(value, name)
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def check_unit_interval(value: object, name: str, open_low: bool = False, open_high: bool = False) -> float:
    """A number in [0, 1] (ends excluded when ``open_low`` / ``open_high``): a mixing weight, a probability."""
    value = check_real(value, name)
    low_ok = value > 0 if open_low else value >= 0
    high_ok = value < 1 if open_high else value <= 1
    if not (low_ok and high_ok):
        interval = f"{'(' if open_low else '['}0, 1{')' if open_high else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def check_choice(value: object, choices, name: str) -> None:
    """One of a fixed set of names (a norm, a loss, an evaluation kind)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(choices)}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")
