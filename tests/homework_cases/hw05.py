"""Plausible wrong answers to homework 5 (hw05_once_for_all.ipynb), each rejected by the tests.

Each entry: (what is wrong, source that replaces the question's solution cell, a substring of the message the
failing test must give).
"""

_MLP = "nn.Sequential(nn.Linear(enc_dim, 2 * channels), nn.LeakyReLU(0.1), nn.Linear(2 * channels, 2 * channels))"
_IDENTITY_INIT = '''
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        nn.init.ones_(self.mlp[-1].bias[:channels])'''
_FORWARD = '''
        mu, beta = self.mlp(encoding).chunk(2, dim=1)
        shape = (h.shape[0], self.channels) + (1,) * (h.dim() - 2)
        return mu.view(shape) * h + beta.view(shape)'''


def _film(mlp: str = _MLP, init: str = _IDENTITY_INIT, forward: str = _FORWARD) -> str:
    """A FiLMLayer answer: the right one, but for the part given (the MLP, its initialization or forward)."""
    return f'''
class FiLMLayer(nn.Module):
    def __init__(self, enc_dim, channels):
        super().__init__()
        self.channels = channels
        self.mlp = {mlp}{init}

    def forward(self, h, encoding):{forward}
'''


WRONG_ANSWERS: dict[str, list[tuple[str, str, str]]] = {
    "q1_oat_loss": [
        ("lambda on the wrong term", '''
def oat_loss(logits_clean, logits_adv, y, lam):
    ce_clean = F.cross_entropy(logits_clean, y, reduction="none")
    ce_adv = F.cross_entropy(logits_adv, y, reduction="none")
    return (lam * ce_clean + (1 - lam) * ce_adv).mean()
''', "lambda and 1 - lambda are swapped"),
        ("sum over the batch instead of the mean", '''
def oat_loss(logits_clean, logits_adv, y, lam):
    ce_clean = F.cross_entropy(logits_clean, y, reduction="none")
    ce_adv = F.cross_entropy(logits_adv, y, reduction="none")
    return ((1 - lam) * ce_clean + lam * ce_adv).sum()
''', "MEAN over the batch, not the sum"),
        ("batch-mean cross-entropies weighted per sample (reduction='mean' first)", '''
def oat_loss(logits_clean, logits_adv, y, lam):
    return ((1 - lam) * F.cross_entropy(logits_clean, y) + lam * F.cross_entropy(logits_adv, y)).mean()
''', "weighted by its OWN lambda_i"),
        ("one lambda for the whole batch (its mean)", '''
def oat_loss(logits_clean, logits_adv, y, lam):
    lam = lam.mean()
    return (1 - lam) * F.cross_entropy(logits_clean, y) + lam * F.cross_entropy(logits_adv, y)
''', "weighted by its OWN lambda_i"),
        ("the adversarial term forgotten", '''
def oat_loss(logits_clean, logits_adv, y, lam):
    return ((1 - lam) * F.cross_entropy(logits_clean, y, reduction="none")).mean()
''', "expected mean_i[(1 - lambda_i) CE(clean_i) + lambda_i CE(adv_i)]"),
        ("a Python float instead of a tensor (.item())", '''
def oat_loss(logits_clean, logits_adv, y, lam):
    ce_clean = F.cross_entropy(logits_clean, y, reduction="none")
    ce_adv = F.cross_entropy(logits_adv, y, reduction="none")
    return ((1 - lam) * ce_clean + lam * ce_adv).mean().item()
''', "must return a scalar tensor"),
    ],
    "q2_film": [
        ("mu and beta swapped", _film(forward=_FORWARD.replace("mu, beta =", "beta, mu =")),
         "mu and beta are swapped"),
        ("no identity initialization (PyTorch's default init of the last Linear)", _film(init=""),
         "an untrained FiLMLayer must be the identity"),
        ("last bias all ones (beta = 1 at init)", _film(init="""
        with torch.no_grad():
            self.mlp[2].weight.zero_()
            self.mlp[2].bias.fill_(1.0)"""), "an untrained FiLMLayer must be the identity"),
        ("the given MLP rewritten with ReLU instead of LeakyReLU(0.1)", _film(mlp=_MLP.replace("nn.LeakyReLU(0.1)", "nn.ReLU()")),
         "LeakyReLU with negative slope 0.1"),
        ("only the bias initialized (the last weight left at PyTorch's random init)", _film(init="""
        with torch.no_grad():
            self.mlp[2].bias.copy_(torch.cat([torch.ones(channels), torch.zeros(channels)]))"""),
         "an untrained FiLMLayer must be the identity"),
        ("the given MLP rewritten without its activation (two Linears in a row)",
         _film(mlp=_MLP.replace(" nn.LeakyReLU(0.1),", "")), "so that course_lib's weights can be copied"),
        ("shift inside the scale: mu * (h + beta)",
         _film(forward=_FORWARD.replace("mu.view(shape) * h + beta.view(shape)", "mu.view(shape) * (h + beta.view(shape))")),
         "not mu * (h + beta)"),
        ("broadcasting written for 4-d inputs only", _film(forward="""
        mu, beta = self.mlp(encoding).chunk(2, dim=1)
        return mu[:, :, None, None] * h + beta[:, :, None, None]"""), "N x C inputs are modulated per feature"),
    ],
}
