"""Wrong answers to homework 4 (SmoothMix): the soft smoothed classifier, one search step, the mixup."""


def _soft(body: str) -> str:
    return f'''
def smoothed_softmax(model, x, noise):
    b, m = noise.shape[0], noise.shape[1]
    logits = model((x.unsqueeze(1) + noise).flatten(0, 1))
    return {body}
'''


def _step(sign: str = "+", norm: str = "grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)",
          finish: str = ".clamp(0.0, 1.0)") -> str:
    # smoothed_softmax is question 1's (the reference solution's cell stays in place)
    return f'''
def search_step(model, x_t, y, noise, step_size):
    x_var = x_t.detach().clone().requires_grad_(True)
    p_true = smoothed_softmax(model, x_var, noise).gather(1, y[:, None]).squeeze(1)
    (grad,) = torch.autograd.grad(-torch.log(p_true.clamp_min(1e-20)).sum(), x_var)
    return (x_t.detach() {sign} step_size * grad / ({norm} + 1e-12)){finish}
'''


def _mixup(inputs: str = "(1 - lam.view(-1, 1, 1, 1)) * x_start + lam.view(-1, 1, 1, 1) * x_adv",
           target: str = "(1 - lam.view(-1, 1)) * clean_probs + lam.view(-1, 1) / clean_probs.shape[1]") -> str:
    return f'''
def mixup_inputs(x_start, x_adv, lam):
    return {inputs}


def mixup_target(clean_probs, lam):
    return {target}
'''


WRONG_ANSWERS: dict[str, list[tuple[str, str, str]]] = {
    "q1_smoothed_softmax": [
        ("softmax of the mean logits", _soft("F.softmax(logits.view(b, m, -1).mean(dim=1), dim=1)"),
         "you averaged the logits"),
        ("noisy inputs clipped to [0, 1]",
         _soft("F.softmax(model((x.unsqueeze(1) + noise).clamp(0, 1).flatten(0, 1)), 1).view(b, m, -1).mean(1)"),
         "you clipped the noisy inputs"),
        ("the B * m outputs grouped the wrong way", _soft("F.softmax(logits, dim=1).view(m, b, -1).mean(dim=0)"),
         "row b of your F_hat depends on other inputs"),
        ("counts votes (one-hot argmax) instead of averaging probabilities",
         _soft("F.one_hot(logits.argmax(1), logits.shape[1]).float().view(b, m, -1).mean(dim=1)"),
         "you counted votes"),
    ],
    "q2_search_step": [
        ("sign error: steps down -log F_hat_y", _step(sign="-"), "your step goes down -log F_hat_y"),
        ("gradient divided by the norm of the whole batch's gradient", _step(norm="grad.norm()"),
         "each example's step should have l_2 length a"),
        ("no clipping to [0, 1]", _step(finish=""), "the search leaves [0, 1]"),
    ],
    "q3_mixup": [
        ("target: the two ends swapped",
         _mixup(target="lam.view(-1, 1) * clean_probs + (1 - lam.view(-1, 1)) / clean_probs.shape[1]"),
         "at lambda = 0 the target must be the clean smoothed prediction"),
        ("target: mixes toward the all-ones vector instead of 1/K",
         _mixup(target="(1 - lam.view(-1, 1)) * clean_probs + lam.view(-1, 1)"),
         "at lambda = 1 the target must be the uniform distribution"),
        ("target: lam not reshaped to broadcast per row",
         _mixup(target="(1 - lam) * clean_probs + lam / clean_probs.shape[1]"), "lam has one weight per row"),
        ("target: one lambda (the batch mean) for every row",
         _mixup(target="(1 - lam.mean()) * clean_probs + lam.mean() / clean_probs.shape[1]"),
         "row i must use its own lambda_i"),
        ("inputs: the two ends swapped",
         _mixup(inputs="lam.view(-1, 1, 1, 1) * x_start + (1 - lam.view(-1, 1, 1, 1)) * x_adv"),
         "at lambda = 0 the mixed input must be x_start"),
    ],
}
