"""Plausible wrong answers to homework 7 (hw07_mixednuts.ipynb), each rejected by the tests.

Each entry: (what is wrong, source that replaces the question's solution cell, a substring of the message the
failing test must give).
"""


def _transform(ln="(z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, unbiased=False, keepdim=True) + 1e-8)",
               clamp="F.gelu(ln + c)", power="u.sign() * u.abs().pow(p)", cast="logits.double()"):
    return f'''
def nuts_transform(logits, s, p, c):
    z = {cast}
    ln = {ln}
    u = {clamp}
    return s * {power}
'''


WRONG_ANSWERS: dict[str, list[tuple[str, str, str]]] = {
    "q1_nuts_transform": [
        ("unbiased variance in the layer norm (torch's default)",
         _transform(ln="(z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, keepdim=True) + 1e-8)"),
         "the layer norm uses the BIASED variance"),
        ("missing clamp", _transform(clamp="ln + c"), "the clamp step is missing"),
        ("ReLU instead of GELU", _transform(clamp="F.relu(ln + c)"), "not ReLU"),
        ("wrong sign of the offset", _transform(clamp="F.gelu(ln - c)"), "the offset has the wrong sign"),
        ("plain power u ** p (NaN for negative u)", _transform(power="u.pow(p)"), "NaN in the output"),
        ("missing layer norm", _transform(ln="z"), "the layer norm step is missing"),
        ("float32 (no .double())", _transform(cast="logits.float()"), "compute M in float64"),
        ("layer norm over the batch instead of the classes",
         _transform(ln="(z - z.mean(0, keepdim=True)) / torch.sqrt(z.var(0, unbiased=False, keepdim=True) + 1e-8)"),
         "differs from course_lib.mixing.nuts_transform"),
        ("scale inside the power, (s u)^p", '''
def nuts_transform(logits, s, p, c):
    z = logits.double()
    u = s * F.gelu((z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, unbiased=False, keepdim=True) + 1e-8) + c)
    return u.sign() * u.abs().pow(p)
''', "differs from course_lib.mixing.nuts_transform"),
        ("no 1e-8 in the layer norm (NaN for constant logits)",
         _transform(ln="(z - z.mean(1, keepdim=True)) / z.std(1, unbiased=False, keepdim=True)"),
         "keep the 1e-8 inside the square root"),
    ],
    "q2_mixednuts": [
        ("g's softmax instead of its one-hot vote", '''
def mixednuts_probabilities(logits_accurate, logits_robust, alpha, s, p, c):
    return ((1 - alpha) * torch.softmax(logits_accurate.double(), dim=1)
            + alpha * torch.softmax(nuts_transform(logits_robust, s, p, c), dim=1))
''', "g votes with the ONE-HOT vector"),
        ("h's logits not transformed", '''
def mixednuts_probabilities(logits_accurate, logits_robust, alpha, s, p, c):
    vote = F.one_hot(logits_accurate.argmax(dim=1), logits_accurate.shape[1]).double()
    return (1 - alpha) * vote + alpha * torch.softmax(logits_robust.double(), dim=1)
''', "must pass through the transform M_{s,p,c}"),
        ("alpha on the accurate model", '''
def mixednuts_probabilities(logits_accurate, logits_robust, alpha, s, p, c):
    vote = F.one_hot(logits_accurate.argmax(dim=1), logits_accurate.shape[1]).double()
    return alpha * vote + (1 - alpha) * torch.softmax(nuts_transform(logits_robust, s, p, c), dim=1)
''', "alpha is on the wrong model"),
        ("log-probabilities returned (as MixedNUTS.forward)", '''
def mixednuts_probabilities(logits_accurate, logits_robust, alpha, s, p, c):
    vote = F.one_hot(logits_accurate.argmax(dim=1), logits_accurate.shape[1]).double()
    return torch.log((1 - alpha) * vote + alpha * torch.softmax(nuts_transform(logits_robust, s, p, c), dim=1))
''', "return the mixed PROBABILITIES"),
        ("transformed logits mixed without their softmax", '''
def mixednuts_probabilities(logits_accurate, logits_robust, alpha, s, p, c):
    vote = F.one_hot(logits_accurate.argmax(dim=1), logits_accurate.shape[1]).double()
    return (1 - alpha) * vote + alpha * nuts_transform(logits_robust, s, p, c)
''', "differ from course_lib.mixing.MixedNUTS"),
    ],
}
