r"""Lambda-conditioned models for once-for-all adversarial training (Wang et al., NeurIPS 2020).

One network ``f(x; lambda)`` whose accuracy-robustness trade-off is chosen at test time by the input ``lambda``:

- :class:`LambdaEncoding` -- ``lambda`` in a fixed list of choices -> a row of a random orthogonal matrix (the
  reference's default encoding), stored as buffers, so a saved model reloads with the same encoding;
- :class:`FiLM` -- feature-wise linear modulation (Perez et al. 2018): an MLP maps the encoding to a per-channel
  scale ``mu`` and shift ``beta``, output ``mu * h + beta``; it starts as the identity (``mu = 1``, ``beta = 0``);
- :class:`DualBatchNorm2d` -- two batch norms, ``bn_clean`` for the lambda = 0 samples (clean training only) and
  ``bn_adv`` for every other sample, because clean and adversarial activations have different statistics;
- :class:`ConditionedCNN` -- the conv net of :mod:`.cnn` with conv -> dual BN -> FiLM -> ReLU in each stage;
- :class:`FixedLambda` -- the adapter ``x -> f(x; lambda)``: an ordinary model for every attack, evaluation and
  certifier of the earlier chapters.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..checks import check_count, check_tensor, check_unit_interval

LAMBDA_CHOICES = (0.0, 0.1, 0.2, 0.3, 0.4, 1.0)
"""The reference implementation's default lambda choices."""


def check_choices(choices: Sequence[float]) -> tuple[float, ...]:
    """A non-empty list of distinct lambdas in [0, 1]."""
    choices = tuple(float(check_unit_interval(c, "lambda")) for c in choices)
    if not choices:
        raise ValueError("the list of lambda choices is empty")
    if len(set(choices)) != len(choices):
        raise ValueError(f"lambda choices must be distinct, got {choices}")
    return choices


class LambdaEncoding(nn.Module):
    """``lambda -> `` row ``i`` of a random ``d x d`` orthogonal matrix (QR of a seeded Gaussian), where
    ``lambda = choices[i]``. The choices and the matrix are buffers: part of the ``state_dict``."""

    def __init__(self, choices: Sequence[float] = LAMBDA_CHOICES, dim: int = 128, seed: int = 0):
        super().__init__()
        choices = check_choices(choices)
        dim = check_count(dim, "dim")
        if dim < len(choices):
            raise ValueError(f"an orthogonal encoding of {len(choices)} choices needs dim >= {len(choices)}")
        gaussian = torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed))
        q, _ = torch.linalg.qr(gaussian)
        self.register_buffer("choices", torch.tensor(choices, dtype=torch.float32))
        self.register_buffer("matrix", q[: len(choices)].contiguous())

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def index(self, lam: torch.Tensor) -> torch.Tensor:
        """The index of each lambda among the choices (ValueError for a lambda that is not a choice)."""
        check_tensor(lam, "lambda", domain=(0.0, 1.0), dim=1)
        match = (lam.to(self.choices.device)[:, None] - self.choices[None, :]).abs() < 1e-6
        if not match.any(dim=1).all():
            unknown = sorted({round(v, 6) for v in lam[~match.any(dim=1).cpu()].tolist()})
            raise ValueError(f"lambda {unknown} is not one of the model's choices {self.choices.tolist()}")
        return match.float().argmax(dim=1)

    def forward(self, lam: torch.Tensor) -> torch.Tensor:
        return self.matrix[self.index(lam)]


class FiLM(nn.Module):
    """``mu(e) * h + beta(e)`` per channel, with ``(mu, beta) = MLP(e)``: Linear(d, 2C), LeakyReLU, Linear(2C, 2C).

    The last layer starts at weight 0 and bias (1, ..., 1, 0, ..., 0), so an untrained FiLM is the identity.
    """

    def __init__(self, enc_dim: int, channels: int):
        super().__init__()
        self.channels = check_count(channels, "channels")
        self.mlp = nn.Sequential(nn.Linear(check_count(enc_dim, "enc_dim"), 2 * channels), nn.LeakyReLU(0.1),
                                 nn.Linear(2 * channels, 2 * channels))
        with torch.no_grad():
            self.mlp[2].weight.zero_()
            self.mlp[2].bias.copy_(torch.cat([torch.ones(channels), torch.zeros(channels)]))

    def forward(self, h: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        if encoding.shape != (h.shape[0], self.mlp[0].in_features):
            raise ValueError(f"encoding must have shape {(h.shape[0], self.mlp[0].in_features)}, "
                             f"got {tuple(encoding.shape)}")
        mu, beta = self.mlp(encoding).chunk(2, dim=1)
        shape = (h.shape[0], self.channels) + (1,) * (h.dim() - 2)
        return mu.view(shape) * h + beta.view(shape)


class DualBatchNorm2d(nn.Module):
    """``bn_clean`` on the samples with lambda = 0, ``bn_adv`` on the others (each batch norm sees, and in train
    mode updates its statistics with, only its own samples)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn_clean = nn.BatchNorm2d(channels)
        self.bn_adv = nn.BatchNorm2d(channels)

    def forward(self, h: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        if clean.shape != (h.shape[0],) or clean.dtype != torch.bool:
            raise ValueError(f"clean must be a boolean mask of shape ({h.shape[0]},)")
        if clean.all():
            return self.bn_clean(h)
        if not clean.any():
            return self.bn_adv(h)
        out = torch.empty_like(h)
        out[clean] = self.bn_clean(h[clean])
        out[~clean] = self.bn_adv(h[~clean])
        return out


class ConditionedCNN(nn.Module):
    """conv(c1)-DualBN-FiLM-ReLU-pool, conv(c2)-DualBN-FiLM-ReLU-pool, fc(fc)-ReLU, fc(K): ``forward(x, lam)``.

    ``lam`` holds one lambda per input (each one of ``choices``). With a single batch norm (``dual_bn=False``) or
    without FiLM (``film=False``) it is the ablation of the chapter.
    """

    sequential_class: type  # set below: how build_model wraps it behind the normalization layer

    def __init__(self, c_in: int, hw: int, widths: tuple[int, int, int], num_classes: int,
                 choices: Sequence[float] = LAMBDA_CHOICES, enc_dim: int = 128, dual_bn: bool = True,
                 film: bool = True, seed: int = 0):
        super().__init__()
        c1, c2, fc = widths
        self.encoding = LambdaEncoding(choices, enc_dim, seed)
        self.dual_bn, self.film = dual_bn, film
        self.convs = nn.ModuleList([nn.Conv2d(c_in, c1, 3, padding=1), nn.Conv2d(c1, c2, 3, padding=1)])
        self.norms = nn.ModuleList([DualBatchNorm2d(c) if dual_bn else nn.BatchNorm2d(c) for c in (c1, c2)])
        self.films = nn.ModuleList([FiLM(enc_dim, c) for c in (c1, c2)]) if film else None
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c2 * (hw // 4) ** 2, fc), nn.ReLU(),
                                  nn.Linear(fc, num_classes))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        if lam.shape != (x.shape[0],):
            raise ValueError(f"lam must hold one lambda per input: shape ({x.shape[0]},), got {tuple(lam.shape)}")
        encoding = self.encoding(lam)  # checks that every lambda is one of the choices
        clean = lam.to(x.device) == 0
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            h = self.norms[i](h, clean) if self.dual_bn else self.norms[i](h)
            if self.films is not None:
                h = self.films[i](h, encoding.to(h.dtype))
            h = self.pool(torch.relu(h))
        return self.head(h)


class ConditionedSequential(nn.Sequential):
    """``Normalize`` then a conditioned body: ``forward(x, lam)`` (the keys of the state_dict are those of an
    ``nn.Sequential``, like every other model of the course)."""

    def forward(self, x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        normalize, body = self
        return body(normalize(x), lam)

    @property
    def choices(self) -> tuple[float, ...]:
        return tuple(round(v, 6) for v in self[1].encoding.choices.tolist())


ConditionedCNN.sequential_class = ConditionedSequential


class FixedLambda(nn.Module):
    """``x -> model(x, lambda)`` for a fixed lambda (a number, or one per input): an ordinary classifier, so every
    attack, evaluation and certifier applies unchanged. Its mode is the wrapped model's mode."""

    def __init__(self, model: nn.Module, lam: float | torch.Tensor):
        super().__init__()
        self.model = model
        if torch.is_tensor(lam):
            check_tensor(lam, "lambda", domain=(0.0, 1.0), dim=1)
            self.lam: float | torch.Tensor = lam
        else:
            self.lam = check_unit_interval(lam, "lambda")
            model[1].encoding.index(torch.tensor([self.lam]))  # a lambda the model knows, or a clear error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_tensor(self.lam):
            lam = self.lam.to(x.device)
            if lam.shape != (x.shape[0],):
                raise ValueError(f"{lam.shape[0]} lambdas for a batch of {x.shape[0]} inputs")
        else:
            lam = torch.full((x.shape[0],), self.lam, device=x.device)
        return self.model(x, lam)
