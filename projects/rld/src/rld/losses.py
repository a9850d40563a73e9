"""RLD and the logit-distillation baselines it is measured against, as pure functions.

Notation follows the paper (arXiv 2408.07703, Sec. 3) and the official code (github.com/zju-SWJ/RLD,
``mdistiller/distillers/{RLD,DKD,KD,SWAP,REVISION,RC}.py``):

* ``z^S``, ``z^T`` -- student and teacher logits, shape ``(B, C)``; ``y`` -- labels, shape ``(B,)``;
* ``t* = argmax_c z^T_c`` -- the teacher's prediction, which may differ from ``y`` (a teacher mistake);
* every KL is ``KL(teacher || student)`` averaged over the batch (``reduction='batchmean'``).

Every function returns a scalar tensor and is numerically safe: binary distributions are built in log
space with log-sum-exp, so no ``log(0)`` can occur (the official code takes ``torch.log`` of summed
probabilities, which is ``-inf`` when the student's target probability underflows in float32). Losses
are computed in float32 (or float64 if given).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MASK_FILL = -1e9
"""Value written into masked logits before the softmax, as in the official ``masked_fill(mask, -1e9)``."""


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, target: torch.Tensor) -> None:
    if student_logits.dim() != 2:
        raise ValueError(f"student logits must have shape (B, C), got {tuple(student_logits.shape)}")
    if teacher_logits is not None and teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} and student logits "
                         f"{tuple(student_logits.shape)} must have the same shape (B, C)")
    if target.dim() != 1 or target.shape[0] != student_logits.shape[0]:
        raise ValueError(f"target must have shape (B,) = ({student_logits.shape[0]},), got {tuple(target.shape)}")


def one_hot_mask(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Boolean mask with ``True`` at ``index[b]`` in row ``b``."""
    return torch.zeros_like(logits, dtype=torch.bool).scatter_(1, index.view(-1, 1), True)


def kl_batchmean(log_p_teacher: torch.Tensor, log_p_student: torch.Tensor) -> torch.Tensor:
    """``sum_c p^T_c (log p^T_c - log p^S_c)`` averaged over rows; both arguments are log-probabilities.

    ``F.kl_div(..., reduction='batchmean', log_target=True)``: no extra full-size masks. Every
    log-probability built in this module is finite (masked logits are filled with ``-1e9``, never ``-inf``),
    so entries with ``exp(log p^T) = 0`` contribute exactly 0.
    """
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def _kl_sum(log_p_teacher: torch.Tensor, log_p_student: torch.Tensor) -> torch.Tensor:
    """:func:`kl_batchmean` times the batch size (callers fold ``1 / B`` into one scalar weight)."""
    return F.kl_div(log_p_student, log_p_teacher, reduction="sum", log_target=True)


def _scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` in float32/64; no copy at ``temperature == 1``."""
    z = _float(logits)
    return z if temperature == 1 else z / temperature


def binary_from_log_probs(log_p: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``[log p_k, log(1 - p_k)]`` for class ``k = index[b]`` from full log-probabilities ``log_p``, (B, 2).

    ``log(1 - p_k) = lse_{c != k} log p_c`` (class ``k`` scattered to ``-inf``), finite whenever the
    log-probabilities are, even when ``p_k`` rounds to 0 or 1 (where ``log(sum of probabilities)``, the
    official form, gives ``-inf``).
    """
    idx = index.view(-1, 1)
    log_rest = torch.logsumexp(log_p.scatter(1, idx, float("-inf")), dim=1, keepdim=True)
    return torch.cat([log_p.gather(1, idx), log_rest], dim=1)


def binary_log_probs(logits: torch.Tensor, index: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log [p_k, 1 - p_k]`` of ``p = softmax(logits / temperature)`` for class ``k = index[b]``, shape (B, 2)."""
    return binary_from_log_probs(F.log_softmax(_scaled(logits, temperature), dim=1), index)


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log_softmax(masked_fill(logits / temperature, mask, -1e9))``, the official MCD masking."""
    z = _float(logits)
    z = z.masked_fill(mask, MASK_FILL) if temperature == 1 else (z / temperature).masked_fill_(mask, MASK_FILL)
    return F.log_softmax(z, dim=1)


def logit_standardize(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Logit standardisation of LSKD (Sun et al., CVPR 2024; official ``normalize``): ``(z - mean) / (std + eps)``.

    ``std`` is the unbiased per-sample standard deviation (``torch.std`` default), as in the official code.
    """
    return (logits - logits.mean(dim=-1, keepdim=True)) / (eps + logits.std(dim=-1, keepdim=True))


def warmup_factor(epoch: float, warmup: float) -> float:
    """``min(epoch / WARMUP, 1)``: the linear ramp on the distillation term (official ``RLD``/``DKD``).

    ``epoch`` is 1-based, as in mdistiller's trainer, so the first epoch already uses ``1 / WARMUP``.
    """
    if warmup <= 0:
        return 1.0
    return min(epoch / warmup, 1.0)


def teacher_ge_mask(teacher_logits: torch.Tensor, target: torch.Tensor, strict: bool = False) -> torch.Tensor:
    """The MCD mask (paper Sec. 3, MCD; official ``_get_ge_mask``).

    ``M_ge = {i : z^T_i >= z^T_y}`` (default): the ground-truth class and every class the teacher ranks at
    or above it. ``strict=True`` gives the ablated ``M_g = {i : z^T_i > z^T_y}`` (the paper's ablation table), which
    leaves the ground-truth class itself *inside* the MCD distribution (our reading; see README Deviations).
    """
    gt_value = teacher_logits.gather(1, target.view(-1, 1))
    return teacher_logits > gt_value if strict else teacher_logits >= gt_value


# ---------------------------------------------------------------------------------------------------
# RLD (paper Sec. 3)
# ---------------------------------------------------------------------------------------------------
def scd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             temperature: float = 1.0) -> torch.Tensor:
    """Sample Confidence Distillation, SCD (paper Sec. 3; official ``rld_loss``, "scd loss").

    ``b^T = [p^T_{t*}, 1 - p^T_{t*}]`` is the teacher's *maximum* probability, whatever class holds it, and
    ``b^S = [p^S_y, 1 - p^S_y]`` the student's probability of the *ground truth*, both at temperature
    ``tau_a``::

        L_SCD = tau_a^2 * KL(b^T || b^S)

    The teacher's wrong class never enters: only its confidence does. At ``tau_a = 1`` the gradient on the
    ground-truth logit is ``p^S_y - p^T_max`` (CE would give ``p^S_y - 1``).
    """
    _check(student_logits, teacher_logits, target)
    log_p_student = F.log_softmax(_scaled(student_logits, temperature), dim=1)
    return _scd_terms(log_p_student, teacher_logits, target, temperature) * (temperature**2 / len(target))


def _scd_terms(log_p_student: torch.Tensor, zt: torch.Tensor, target: torch.Tensor,
               temperature: float) -> torch.Tensor:
    """``B * KL(b^T || b^S)`` given the student's full log-probabilities at ``tau_a``."""
    log_b_teacher = binary_log_probs(zt, zt.argmax(dim=1), temperature)
    return _kl_sum(log_b_teacher, binary_from_log_probs(log_p_student, target))


def mcd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             temperature: float = 4.0, *, strict: bool = False) -> torch.Tensor:
    """Masked Correlation Distillation, MCD (paper Sec. 3; official ``rld_loss``, "mcd loss").

    The teacher-derived mask ``M`` (:func:`teacher_ge_mask`: the ground truth and every class the teacher
    ranks at or above it) removes every class that could carry the teacher's mistake; the KL is taken
    between the renormalised remaining distributions, the *same* mask applied to both networks::

        p~_i = exp(z_i / tau) / sum_{c not in M} exp(z_c / tau)    for i not in M
        L_MCD = tau^2 * KL(p~^T || p~^S)

    Masked student logits get exactly zero gradient. When the teacher ranks the ground truth last every
    class is masked and the loss is 0 (uniform vs uniform), as in the official ``masked_fill(-1e9)``.
    """
    _check(student_logits, teacher_logits, target)
    return _mcd_terms(student_logits, teacher_logits, target, temperature, strict) * (temperature**2 / len(target))


def _mcd_terms(zs: torch.Tensor, zt: torch.Tensor, target: torch.Tensor, temperature: float,
               strict: bool) -> torch.Tensor:
    """``B * KL(p~^T || p~^S)`` over the classes outside the teacher's mask."""
    mask = teacher_ge_mask(zt, target, strict=strict)
    return _kl_sum(masked_log_softmax(zt, mask, temperature), masked_log_softmax(zs, mask, temperature))


def rld_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, epoch: float, *,
             ce_weight: float = 1.0, alpha: float = 1.0, beta: float = 8.0, alpha_temperature: float = 1.0,
             temperature: float = 4.0, warmup: float = 20, strict: bool = False,
             logit_stand: bool = False) -> torch.Tensor:
    """The full RLD objective (paper Sec. 3, overall loss; official ``RLD.forward_train``)::

        L = CE_WEIGHT * CE(z^S, y) + min(epoch / WARMUP, 1) * (alpha * L_SCD(tau_a) + beta * L_MCD(tau))

    Defaults are the official code's: ``CE_WEIGHT=1, ALPHA=1, BETA=8, ALPHA_T=1, T=4, WARMUP=20``.
    A term whose weight is 0 is not evaluated: ``alpha=0`` drops SCD and ``beta=0`` drops MCD (the paper's
    ablation), ``ce_weight=0`` drops the CE, and a warm-up factor of 0 (``epoch=0``) drops the distillation.
    ``logit_stand`` applies LSKD logit standardisation to both networks' logits inside the distillation
    terms only (the CE stays on raw logits, as in the official code).
    """
    _check(student_logits, teacher_logits, target)
    zs, zt = (logit_standardize(student_logits), logit_standardize(teacher_logits)) if logit_stand else (
        student_logits, teacher_logits)
    factor, batch = warmup_factor(epoch, warmup), len(target)
    terms, log_p_student = [], None
    if alpha and factor:
        log_p_student = F.log_softmax(_scaled(zs, alpha_temperature), dim=1)
        scd = _scd_terms(log_p_student, zt, target, alpha_temperature)
        terms.append(scd * (factor * alpha * alpha_temperature**2 / batch))
    if beta and factor:
        mcd = _mcd_terms(zs, zt, target, temperature, strict)
        terms.append(mcd * (factor * beta * temperature**2 / batch))
    if ce_weight:
        if log_p_student is not None and alpha_temperature == 1 and not logit_stand:
            ce = F.nll_loss(log_p_student, target)  # SCD already holds log softmax(z^S) at tau_a = 1
        else:
            ce = F.cross_entropy(_float(student_logits), target)
        terms.append(ce_weight * ce)
    return sum(terms[1:], terms[0]) if terms else _float(student_logits).sum() * 0.0


# ---------------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------------
def kd_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``tau^2 * KL(softmax(z^T / tau) || softmax(z^S / tau))`` (Hinton et al. 2015; official ``kd_loss``)."""
    log_p_teacher = F.log_softmax(_float(teacher_logits) / temperature, dim=1)
    log_p_student = F.log_softmax(_float(student_logits) / temperature, dim=1)
    return kl_batchmean(log_p_teacher, log_p_student) * temperature**2


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, *,
            temperature: float = 4.0, ce_weight: float = 0.1, kd_weight: float = 0.9) -> torch.Tensor:
    """KD (Hinton et al. 2015; official ``KD``): ``CE_WEIGHT * CE + KD_WEIGHT * tau^2 * KL``.

    CIFAR-100 defaults ``T=4, CE=0.1, KD=0.9``; ImageNet ``T=1, CE=1.0, KD=0.5``.
    """
    _check(student_logits, teacher_logits, target)
    ce = F.cross_entropy(_float(student_logits), target)
    return ce_weight * ce + kd_weight * kd_divergence(student_logits, teacher_logits, temperature)


def dkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """TCKD and NCKD of DKD (Zhao et al., CVPR 2022, Eq. 7; official ``dkd_loss``).

    TCKD is the binary KL of ``[p_y, 1 - p_y]`` (teacher vs student, both at the *ground truth*); NCKD the
    KL over the non-target classes, the ground truth removed (official: ``- 1000 * gt_mask``). Both are
    multiplied by ``tau^2``.
    """
    _check(student_logits, teacher_logits, target)
    tckd = kl_batchmean(binary_log_probs(teacher_logits, target, temperature),
                        binary_log_probs(student_logits, target, temperature)) * temperature**2
    gt = one_hot_mask(student_logits, target).float()
    log_p_teacher = F.log_softmax(_float(teacher_logits) / temperature - 1000.0 * gt, dim=1)
    log_p_student = F.log_softmax(_float(student_logits) / temperature - 1000.0 * gt, dim=1)
    nckd = kl_batchmean(log_p_teacher, log_p_student) * temperature**2
    return tckd, nckd


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, epoch: float, *,
             ce_weight: float = 1.0, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
             warmup: float = 20) -> torch.Tensor:
    """DKD (Zhao et al., CVPR 2022; official ``DKD``)::

        L = CE_WEIGHT * CE + min(epoch / WARMUP, 1) * (alpha * TCKD + beta * NCKD)

    When the teacher is right on every sample (``t* = y``) and ``tau_a = tau``, this equals
    :func:`rld_loss` exactly (SCD = TCKD, MCD = NCKD).
    """
    ce = F.cross_entropy(_float(student_logits), target)
    tckd, nckd = dkd_terms(student_logits, teacher_logits, target, temperature)
    return ce_weight * ce + warmup_factor(epoch, warmup) * (alpha * tckd + beta * nckd)


def swap_logits(teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LA's label-based correction (official ``SWAP.swap``): swap the teacher's max and ground-truth logits.

    A no-op on rows where the teacher is already right.
    """
    gt_value = teacher_logits.gather(1, target.view(-1, 1))
    max_value, max_index = teacher_logits.max(dim=1, keepdim=True)
    return teacher_logits.clone().scatter_(1, max_index, gt_value).scatter_(1, target.view(-1, 1), max_value)


def la_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, *,
            temperature: float = 4.0) -> torch.Tensor:
    """LA, "swap" (official ``SWAP``): KD on the swapped teacher logits, ``tau^2 * KL``, and **no CE term**."""
    _check(student_logits, teacher_logits, target)
    return kd_divergence(student_logits, swap_logits(teacher_logits.detach(), target), temperature)


def revised_soft_label(teacher_logits: torch.Tensor, target: torch.Tensor, eta: float = 0.8) -> torch.Tensor:
    """LR's revised label (official ``REVISION``): ``beta p^T + (1 - beta) onehot(y)``,
    ``beta = eta / (p^T_max - p^T_y + 1)``, with ``p^T = softmax(z^T)`` at temperature 1."""
    p_teacher = F.softmax(_float(teacher_logits), dim=1)
    p_max = p_teacher.max(dim=1, keepdim=True).values
    p_gt = p_teacher.gather(1, target.view(-1, 1))
    beta = eta / (p_max - p_gt + 1.0)
    return beta * p_teacher + (1.0 - beta) * F.one_hot(target, p_teacher.shape[1]).to(p_teacher.dtype)


def lr_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, *,
            lambda1: float = 4.0, lambda2: float = 1.0, eta: float = 0.8) -> torch.Tensor:
    """LR, "label revision" (official ``REVISION.revision_loss``).

    Samples the teacher gets right: ``CE + lambda1 * MSE(z^S, z^T)`` (MSE on *logits*, mean over that subset's
    elements). Samples it gets wrong: ``lambda2 * MSE(softmax(z^S), revised label)`` (on probabilities). As in
    the official code the CE covers only the right subset; an empty subset contributes 0.
    """
    _check(student_logits, teacher_logits, target)
    zs, zt = _float(student_logits), _float(teacher_logits).detach()
    right = zt.argmax(dim=1) == target
    loss = zs.new_zeros(())
    if right.any():
        loss = loss + F.cross_entropy(zs[right], target[right]) + lambda1 * F.mse_loss(zs[right], zt[right])
    wrong = ~right
    if wrong.any():
        revised = revised_soft_label(zt[wrong], target[wrong], eta)
        loss = loss + lambda2 * F.mse_loss(F.softmax(zs[wrong], dim=1), revised)
    return loss


def rc_target_logits(student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """RC's "review & correct" target (official ``RC.rc_loss``): the student's own (detached) logits with the
    ground-truth logit raised to ``z^S_y + max_c z^S_c``."""
    zs = student_logits.detach()
    raised = zs.gather(1, target.view(-1, 1)) + zs.max(dim=1, keepdim=True).values
    return zs.clone().scatter_(1, target.view(-1, 1), raised)


def rc_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, *,
            temperature: float = 4.0, ce_weight: float = 1.0, kd_weight: float = 1.0,
            rc_weight: float = 0.1) -> torch.Tensor:
    """RC (official ``RC``): ``CE + KD_WEIGHT * tau^2 KL(p^T || p^S) + RC_WEIGHT * tau^2 KL(p^RC || p^S)``,
    with ``p^RC`` from :func:`rc_target_logits`. Defaults ``CE=1, KD=1, RC=0.1, T=4``."""
    _check(student_logits, teacher_logits, target)
    ce = F.cross_entropy(_float(student_logits), target)
    kd = kd_divergence(student_logits, teacher_logits, temperature)
    rc = kd_divergence(student_logits, rc_target_logits(student_logits, target), temperature)
    return ce_weight * ce + kd_weight * kd + rc_weight * rc
