"""Plausible wrong answers to homework 6 (hw06_mixing.ipynb), each rejected by the tests.

Each entry: (what is wrong, source that replaces the question's solution cell, a substring of the message the
failing test must give).
"""

WRONG_ANSWERS: dict[str, list[tuple[str, str, str]]] = {
    "q1_mixed_classifier": [
        ("mixing logits instead of probabilities", '''
def mixed_log_probs(logits_accurate, logits_robust, alpha):
    return (1 - alpha) * logits_accurate + alpha * logits_robust
''', "you mixed LOGITS"),
        ("log-softmax of the mixed logits", '''
def mixed_log_probs(logits_accurate, logits_robust, alpha):
    return F.log_softmax((1 - alpha) * logits_accurate + alpha * logits_robust, dim=1)
''', "you mixed LOGITS"),
        ("alpha on the accurate model", '''
def mixed_log_probs(logits_accurate, logits_robust, alpha):
    return torch.log(alpha * torch.softmax(logits_accurate, dim=1) + (1 - alpha) * torch.softmax(logits_robust, dim=1))
''', "alpha is on the wrong model"),
        ("probabilities instead of log-probabilities", '''
def mixed_log_probs(logits_accurate, logits_robust, alpha):
    return (1 - alpha) * torch.softmax(logits_accurate, dim=1) + alpha * torch.softmax(logits_robust, dim=1)
''', "return LOG-probabilities"),
        ("mixing log-probabilities (a geometric mixture)", '''
def mixed_log_probs(logits_accurate, logits_robust, alpha):
    return (1 - alpha) * F.log_softmax(logits_accurate, dim=1) + alpha * F.log_softmax(logits_robust, dim=1)
''', "you averaged LOG-probabilities"),
        ("softmax over the batch instead of the classes", '''
def mixed_log_probs(logits_accurate, logits_robust, alpha):
    return torch.log((1 - alpha) * torch.softmax(logits_accurate, dim=0) + alpha * torch.softmax(logits_robust, dim=0))
''', "differs from course_lib.mixing.MixedClassifier"),
    ],
    "q2_margin_radius": [
        ("no clipping at 0", '''
def mixture_radius(p_top, p_runner, alpha, lipschitz):
    return (np.asarray(p_top) - np.asarray(p_runner) - (1 - alpha) / alpha) / (2 * lipschitz)
''', "a certified radius is never negative"),
        ("denominator L instead of 2 L", '''
def mixture_radius(p_top, p_runner, alpha, lipschitz):
    return np.maximum(0.0, (np.asarray(p_top) - np.asarray(p_runner) - (1 - alpha) / alpha) / lipschitz)
''', "the denominator is 2 L"),
        ("margin requirement 1 - alpha instead of (1 - alpha) / alpha", '''
def mixture_radius(p_top, p_runner, alpha, lipschitz):
    return np.maximum(0.0, (np.asarray(p_top) - np.asarray(p_runner) - (1 - alpha)) / (2 * lipschitz))
''', "mu = (1 - alpha) / alpha, the margin the lemma requires"),
        ("margin requirement inverted, alpha / (1 - alpha)", '''
def mixture_radius(p_top, p_runner, alpha, lipschitz):
    return np.maximum(0.0, (np.asarray(p_top) - np.asarray(p_runner) - alpha / (1 - alpha)) / (2 * lipschitz))
''', "mu = (1 - alpha) / alpha, the margin the lemma requires"),
        ("alpha dropped from the denominator of the first form", '''
def mixture_radius(p_top, p_runner, alpha, lipschitz):
    return np.maximum(0.0, (alpha * (np.asarray(p_top) - np.asarray(p_runner)) + alpha - 1) / (2 * lipschitz))
''', "mu = (1 - alpha) / alpha, the margin the lemma requires"),
        ("divides by alpha = 0", '''
def mixture_radius(p_top, p_runner, alpha, lipschitz):
    mu = (1 - alpha) / alpha
    return np.maximum(0.0, (np.asarray(p_top) - np.asarray(p_runner) - mu) / (2 * lipschitz))
''', "alpha = 0 is g alone, which certifies nothing"),
    ],
}
