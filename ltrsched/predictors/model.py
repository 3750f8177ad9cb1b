"""The fast default backbone: hashed n-gram EmbeddingBag + length features + a small MLP head."""

from __future__ import annotations

from ltrsched.predictors.features import NgramBags

#: Rows of the head's input multiplied at once when scoring (eval mode), the last block padded with zero rows. A matrix
#: product's kernel, and so the last bit of a row's result, changed with how many rows it multiplied: a prompt scored
#: alone, or in a last batch of 1,023, got another score than in a batch of 1,024 (1 ulp, in 94 of 300 prompts of a
#: class model scored one at a time), so one prompt twice in a workload could score twice, breaking its tie by
#: noise, and ``predict`` of a subset gave other scores. Blocks of one size give a row one result whatever the batch.
#: Training (train mode) multiplies its lists as before.
HEAD_ROWS = 64


def build_ngram_model(dim: int, hidden: int, outputs: int):
    """A torch module mapping :class:`NgramBags` to ``outputs`` values per prompt (1 = ranking score,
    k = class logits). ``hidden = 0`` makes it linear in the features."""
    import numpy as np
    import torch
    from torch import nn

    class _LinearSum(nn.Module):
        def __init__(self, outputs: int) -> None:
            super().__init__()
            self.dense = nn.Linear(2, outputs)

        def forward(self, x):
            return x[:, :-2] + self.dense(x[:, -2:])

    class NgramModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            width = hidden if hidden > 0 else outputs
            self.bag = nn.EmbeddingBag(dim, width, mode="sum")
            nn.init.normal_(self.bag.weight, std=0.01)
            if hidden > 0:
                self.head = nn.Sequential(nn.Linear(hidden + 2, hidden), nn.ReLU(), nn.Linear(hidden, outputs))
            else:  # linear: n-gram weights + a linear term in the length features
                self.head = _LinearSum(outputs)

        def forward(self, bags: NgramBags):
            indices = torch.from_numpy(bags.indices.astype(np.int64, copy=False))  # (as the offsets: torch wants both)
            emb = self.bag(indices, torch.from_numpy(bags.offsets),
                           per_sample_weights=torch.from_numpy(bags.weights))
            x = torch.cat([emb, torch.from_numpy(bags.dense)], dim=1)
            out = self.head(x) if self.training else _in_blocks(self.head, x)
            return out[:, 0] if outputs == 1 else out

    return NgramModel()


def _in_blocks(head, x):
    """``head(x)`` computed :data:`HEAD_ROWS` rows at a time, the last block padded with zero rows (dropped from the
    result): each row's result is the same whatever the number of rows and the other rows."""
    import torch

    n = x.shape[0]
    padded = -(-n // HEAD_ROWS) * HEAD_ROWS
    if padded != n:
        x = torch.cat([x, x.new_zeros((padded - n, x.shape[1]))])
    return torch.cat([head(x[i: i + HEAD_ROWS]) for i in range(0, padded, HEAD_ROWS)])[:n] if n else head(x)


def subset(bags: NgramBags, rows) -> NgramBags:
    """The bags of the given rows (a minibatch)."""
    import numpy as np

    ends = np.append(bags.offsets[1:], len(bags.indices))
    starts = bags.offsets[rows]
    stops = ends[rows]
    take = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]) if len(rows) else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(stops - starts)[:-1]]).astype(np.int64)
    return NgramBags(bags.indices[take], offsets, bags.weights[take], bags.dense[rows])
