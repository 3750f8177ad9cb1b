"""Ranking losses. Scores: higher = shorter expected output. Labels: output lengths (or buckets)."""

from __future__ import annotations


def listmle_loss(scores, labels):
    """ListMLE (Xia et al., 2008) of one list: the negative log-likelihood of the true order under the
    Plackett-Luce model of ``scores``. The true order puts the shortest output first (ties: any order,
    broken by the stable sort). ``scores``, ``labels``: 1-D tensors of one list; returns a scalar (mean
    over the list's positions)."""
    import torch

    order = torch.argsort(labels, stable=True)  # shortest first = best first
    s = scores[order]
    # log sum_{j >= i} exp(s_j): reverse cumulative logsumexp
    rev = torch.flip(torch.logcumsumexp(torch.flip(s, [0]), 0), [0])
    return (rev - s).mean()


def pairwise_loss(scores, labels):
    """RankNet logistic loss over all pairs with different labels: shorter should score higher."""
    import torch

    diff_l = labels[:, None] - labels[None, :]  # > 0 where i is longer than j
    mask = diff_l > 0
    if not mask.any():
        return scores.sum() * 0.0
    margin = scores[None, :] - scores[:, None]  # s_j - s_i: should be positive when i is longer
    return torch.nn.functional.softplus(-margin[mask]).mean()


LOSSES = {"listmle": listmle_loss, "pairwise": pairwise_loss}
