"""Adversarial attacks, one per file (FGSM, PGD; APGD-CE and APGD-T from torchattacks; transfer; minimum margin),
for l_inf and l_2.

Every attack takes ``(model, x, y, eps, ...)`` with images ``x`` in [0, 1] and returns adversarial images
that stay inside the eps-ball around ``x`` and inside [0, 1]. The model is attacked in eval mode and its
train/eval mode is restored afterwards. ``eps = 0`` returns a copy of the input.
"""

from .autoattack import apgd_ce, apgd_t
from .base import NORMS, project
from .fgsm import fgsm
from .min_margin import label_margin, min_margin
from .pgd import pgd
from .transfer import transfer

__all__ = ["NORMS", "apgd_ce", "apgd_t", "fgsm", "label_margin", "min_margin", "pgd", "project", "transfer"]
