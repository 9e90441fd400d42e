"""Wrong answers to homework 2 (TRADES): the KL term, the loss of a batch, one step of the inner maximization."""


def _kl(body: str) -> str:
    return f'''
def trades_kl(logits_clean, logits_adv):
    log_p = F.log_softmax(logits_clean, dim=1)
    log_q = F.log_softmax(logits_adv, dim=1)
    return {body}
'''


def _loss(body: str) -> str:
    # trades_kl is question 1's (the reference solution's cell stays in place)
    return f'''
def trades_loss(model, x, y, x_adv, beta):
    logits_clean = model(x)
    return {body}
'''


def _step(kl: str = "(log_p_clean.exp() * (log_p_clean - log_p_adv)).sum()", sign: str = "+",
          finish: str = "torch.min(torch.max(stepped, x - eps), x + eps).clamp(0.0, 1.0)") -> str:
    return f'''
def trades_attack_step(model, x_adv, x, eps, alpha):
    with torch.no_grad():
        log_p_clean = F.log_softmax(model(x), dim=1)
    x_var = x_adv.detach().clone().requires_grad_(True)
    log_p_adv = F.log_softmax(model(x_var), dim=1)
    (grad,) = torch.autograd.grad({kl}, x_var)
    stepped = x_adv.detach() {sign} alpha * grad.sign()
    return {finish}
'''


WRONG_ANSWERS: dict[str, list[tuple[str, str, str]]] = {
    "q1_trades_kl": [
        ("KL in the wrong direction, KL(p(x') || p(x))", _kl("(log_q.exp() * (log_q - log_p)).sum(1).mean()"),
         "you computed KL(p(x') || p(x))"),
        ("averaged over the classes too (F.kl_div's reduction='mean')",
         _kl('F.kl_div(log_q, log_p, reduction="mean", log_target=True)'), "times too small"),
        ("summed over the batch", _kl("(log_p.exp() * (log_p - log_q)).sum()"), "times too large"),
        ("log of the softmax: not finite for confident logits",
         _kl("(F.softmax(logits_clean, 1) * (torch.log(F.softmax(logits_clean, 1)) "
             "- torch.log(F.softmax(logits_adv, 1)))).sum(1).mean()"),
         "use F.log_softmax"),
        ("returns a number without gradient", _kl("torch.tensor((log_p.exp() * (log_p - log_q)).sum(1).mean().item())"),
         "carries no gradient"),
    ],
    "q2_trades_loss": [
        ("cross-entropy at x_adv (PGD-AT's loss) instead of x",
         _loss("F.cross_entropy(model(x_adv), y) + beta * trades_kl(logits_clean, model(x_adv))"),
         "your cross-entropy term sees x_adv"),
        ("beta on the cross-entropy instead of the KL",
         _loss("beta * F.cross_entropy(logits_clean, y) + trades_kl(logits_clean, model(x_adv))"),
         "with beta = 0 the TRADES loss is the clean cross-entropy"),
        ("cross-entropy summed over the batch",
         _loss('F.cross_entropy(logits_clean, y, reduction="sum") + beta * trades_kl(logits_clean, model(x_adv))'),
         "your cross-entropy is summed over the batch"),
        ("no gradient through p(x) in the KL term",
         _loss("F.cross_entropy(logits_clean, y) + beta * trades_kl(logits_clean.detach(), model(x_adv))"),
         "do not detach p(x)"),
    ],
    "q3_trades_attack_step": [
        ("sign error: steps down the KL", _step(sign="-"), "your step goes down the KL divergence"),
        ("climbs KL(p(x') || p(x)), the wrong direction",
         _step(kl="(log_p_adv.exp() * (log_p_adv - log_p_clean)).sum()"), "you climbed KL(p(x') || p(x))"),
        ("no projection onto the ball", _step(finish="stepped.clamp(0.0, 1.0)"), "leaves the l_inf ball"),
        ("no clipping to [0, 1]", _step(finish="torch.min(torch.max(stepped, x - eps), x + eps)"),
         "the step leaves [0, 1]"),
    ],
}
