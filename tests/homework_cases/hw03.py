"""Wrong answers to homework 3 (randomized smoothing): the Clopper-Pearson bound and CERTIFY's decision."""


def _bound(body: str, zero_case: bool = True) -> str:
    guard = "    if n_a == 0:\n        return 0.0\n" if zero_case else ""
    return f'''
def lower_confidence_bound(n_a, n, alpha):
{guard}    return float({body})
'''


def _certify(c_a: str = "int(np.argmax(counts0))", n: str = "int(np.sum(counts))",
             bound: str = "lower_confidence_bound(int(counts[c_a]), n, alpha)",
             abstain: str = "p_a_lower < 0.5", radius: str = "sigma * norm.ppf(p_a_lower)") -> str:
    # lower_confidence_bound is question 1's (the reference solution's cell stays in place)
    return f'''
def certify(counts0, counts, sigma, alpha):
    c_a = {c_a}
    n = {n}
    p_a_lower = {bound}
    if {abstain}:
        return ABSTAIN, 0.0
    return c_a, float({radius})
'''


WRONG_ANSWERS: dict[str, list[tuple[str, str, str]]] = {
    "q1_lower_confidence_bound": [
        ("two-sided interval's lower end (alpha / 2)", _bound("beta.ppf(alpha / 2, n_a, n - n_a + 1)"),
         "lower end of the two-sided interval"),
        ("the 1 - alpha quantile", _bound("beta.ppf(1 - alpha, n_a, n - n_a + 1)"), "is above the estimate n_a / n"),
        ("no special case for n_a = 0 (SciPy returns nan)", _bound("beta.ppf(alpha, n_a, n - n_a + 1)", False),
         "with n_a = 0 the bound is 0"),
        ("normal (Wald) approximation",
         _bound("n_a / n - norm.ppf(1 - alpha) * np.sqrt(n_a / n * (1 - n_a / n) / n)"), "normal approximation"),
        ("the Beta parameters of the upper bound", _bound("beta.ppf(alpha, n_a + 1, n - n_a)"),
         "B^-1(alpha; n_a, n - n_a + 1)"),
    ],
    "q2_certify": [
        ("chooses c_A on the estimation counts", _certify(c_a="int(np.argmax(counts))"),
         "you chose c_A from the estimation counts"),
        ("radius from the estimate n_A / n, not the bound", _certify(bound="counts[c_a] / n"),
         "your radius uses the estimate n_A / n"),
        ("never abstains", _certify(abstain="False"), "CERTIFY abstains and returns (ABSTAIN, 0.0)"),
        ("radius without sigma", _certify(radius="norm.ppf(p_a_lower)"), "expected sigma * Phi^-1(p_A_lower)"),
        ("n = the number of classes", _certify(n="len(counts)"), "n is counts.sum()"),
    ],
}
