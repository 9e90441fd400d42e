"""Training: one loop (:mod:`.loop`) and the losses it can minimize (:mod:`.losses`), registered by name.

- standard:   E[ CE(f(x), y) ]
- FGSM-AT:    E[ CE(f(x_fgsm), y) ], optionally mixed with the clean loss    (Goodfellow et al. 2015)
              optionally from a random start, "FGSM-RS"                       (Wong et al. 2020)
- PGD-AT:     E[ max_{||d|| <= eps} CE(f(x + d), y) ] ~ E[ CE(f(x_pgd), y) ]  (Madry et al. 2018)
              By Danskin's theorem the gradient of the inner max is the gradient at the maximizer.
- TRADES:     E[ CE(f(x), y) + beta * max_{||x'-x|| <= eps} KL(p(x) || p(x')) ]  (Zhang et al. 2019)
- Gaussian:   E[ CE(f(x + sigma * n), y) ], n ~ N(0, I) fresh per batch          (Cohen et al. 2019)
- SmoothMix:  Gaussian CE over m draws + eta * KL(mixup target || f(x_mix + d))  (Jeong et al. 2021), smoothmix.py

- OAT:        (1 - lambda) CE(f(x; lambda)) + lambda CE(f(x_adv; lambda)), lambda per sample  (Wang et al. 2020), oat.py

Each chapter's loss lives in a file of its own here and registers itself in :data:`LOSSES`.
"""

from .loop import OPTIMIZERS, SCHEDULES, TrainHistory, TrainLoss, train
from .losses import (LOSSES, fgsm_at_loss, gaussian_loss, pgd_at_loss, ramp, register_loss, standard_loss,
                     trades_attack, trades_kl, trades_loss)
from .oat import oat_loss, sample_lambdas
from .smoothmix import (confidence_along_search, draw_noise, mixup_inputs, mixup_target, smoothed_nll, smoothmix_loss,
                        smoothmix_path, warmup)

__all__ = ["LOSSES", "OPTIMIZERS", "SCHEDULES", "TrainHistory", "TrainLoss", "fgsm_at_loss", "gaussian_loss",
           "pgd_at_loss", "ramp", "register_loss", "standard_loss", "trades_attack", "trades_kl", "trades_loss",
           "train", "confidence_along_search", "draw_noise", "mixup_inputs", "mixup_target", "smoothed_nll", "smoothmix_loss", "smoothmix_path",
           "warmup", "oat_loss", "sample_lambdas"]
