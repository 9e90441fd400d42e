"""Wrong answers to homework 1 (adversarial examples): FGSM, the projection, one l_2 PGD step."""


def _fgsm(step_linf: str, step_l2: str, finish: str = "(x + eps * direction).clamp(0, 1)") -> str:
    return f'''
def fgsm(model, x, y, eps, norm="linf"):
    x_var = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_var), y, reduction="sum"), x_var)
    if norm == "linf":
        direction = {step_linf}
    else:
        direction = {step_l2}
    return {finish}.detach()
'''


_SIGN, _L2 = "grad.sign()", "grad / (grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-12)"


def _pgd_step(grad_at: str = "x_adv", step: str = "grad / (grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-12)",
              sign: str = "+", finish: str = 'project(stepped, x, eps, "l2")') -> str:
    # project is question 2's (the reference solution's cell stays in place)
    return f'''
def pgd_l2_step(model, x_adv, x, y, eps, alpha):
    x_var = {grad_at}.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_var), y, reduction="sum"), x_var)
    stepped = x_adv {sign} alpha * {step}
    return {finish}.detach()
'''


def _project(linf: str, l2_scale: str, finish: str = "(x + delta).clamp(0, 1)") -> str:
    return f'''
def project(x_adv, x, eps, norm):
    delta = x_adv - x
    if norm == "linf":
        delta = {linf}
    else:
        n = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * {l2_scale}
    return {finish}
'''


_LINF, _SCALE = "delta.clamp(-eps, eps)", "torch.clamp(eps / (n + 1e-12), max=1.0)"

WRONG_ANSWERS: dict[str, list[tuple[str, str, str]]] = {
    "q1_fgsm": [
        ("sign error: steps down the loss", _fgsm(_SIGN, _L2, "(x - eps * direction).clamp(0, 1)"),
         "the loss went down"),
        ("no clipping to [0, 1]", _fgsm(_SIGN, _L2, "(x + eps * direction)"), "pixel values outside [0, 1]"),
        ("l_2 step divided by the norm of the whole batch's gradient", _fgsm(_SIGN, "grad / grad.norm()"),
         "divide each example's gradient by its own l_2 norm"),
        ("l_2 step uses the sign of the gradient", _fgsm(_SIGN, _SIGN), "leaves the l_2 ball"),
        ("l_inf step uses the raw gradient, not its sign", _fgsm("grad", _L2),
         "every pixel should move by exactly eps"),
    ],
    "q2_project": [
        ("l_2: rescales every delta to norm eps, even inside the ball", _project(_LINF, "eps / (n + 1e-12)"),
         "points inside the l_2 ball and [0, 1] must not move"),
        ("l_2: one norm for the whole batch", _project(_LINF, "torch.clamp(eps / (delta.norm() + 1e-12), max=1.0)"),
         "points inside the l_2 ball and [0, 1] must not move"),
        ("l_2: clips each pixel to [-eps, eps] (the l_inf projection)",
         _project(_LINF, "1.0", "(x + delta.clamp(-eps, eps)).clamp(0, 1)"), "leaves the l_2 ball"),
        ("no clipping to [0, 1]", _project(_LINF, _SCALE, "x + delta"), "the projection leaves [0, 1]"),
        ("l_inf: clips to [0, 1] only, not to the ball", _project("delta", _SCALE),
         "the l_inf projection leaves the ball"),
    ],
    "q3_pgd_l2_step": [
        ("gradient taken at the clean x", _pgd_step(grad_at="x"), "you took the gradient at the clean x"),
        ("no projection", _pgd_step(finish="stepped.clamp(0, 1)"), "leaves the l_2 ball"),
        ("sign step (the l_inf direction)", _pgd_step(step="grad.sign()"),
         "each example's step should have l_2 length alpha"),
        ("sign error: steps down the loss", _pgd_step(sign="-"), "your step goes down the loss"),
        ("gradient divided by the norm of the whole batch's gradient", _pgd_step(step="grad / grad.norm()"),
         "each example's step should have l_2 length alpha"),
    ],
}
