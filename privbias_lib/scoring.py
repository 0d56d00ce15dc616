"""Log-likelihoods of continuations under a causal LM, sharing the work of common prefixes.

:func:`continuation_logprobs` scores, for each token sequence, its tokens from ``start`` on
given the tokens before. It serves study 4 (a prompt of hundreds of shared few-shot tokens,
then a question, then one of a few short answers) and study 3 (a shared context, then
every candidate canary secret) with one algorithm:

* the sequences form a prefix tree whose edges are runs of tokens (a radix tree): a shared
  context is one edge, each question or digit prefix another, each answer or last digit a
  leaf. Every token of an inner edge runs through the model exactly once, on top of the
  key/value cache of its parent edge, gathered into one row per child;
* a leaf runs only its tokens but the last (its first token is scored from the parent's
  last logits), so a one-token leaf (a candidate's last digit) costs no forward pass;
* a node whose cache nothing needs (an item's answer, a candidate's second-to-last digit)
  runs in its parent's row, after it, as a branch of a tree attention mask (it sees its
  parent and itself only): no pass and no cache copy of its own;
* logits are computed only where a scored token is predicted (``logits_to_keep``), with
  each row's new tokens left-padded so that those positions end every row;
* a forward pass takes up to ``batch_size`` nodes whose parents are done, from any parents
  (their cache rows merged, shorter ones padded): nodes of similar lengths together, the
  newest first. Newest first finishes a subtree before its older siblings (depth first), so
  memory holds about one pass's cache per tree level, never one per node.

The work is thus the tree's distinct tokens (the context, then 10 + 100 + 1000 tokens for
every 4-digit secret; the shared few-shot prompt once for all questions), not one full
sequence per text.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

PASS_COST = 16
"""What one more forward pass is worth, in padded token slots: nodes of very different
lengths go to separate passes when that saves more padding than this. (On a CPU a pass of
SmolLM2-135M costs about as much as 20 tokens of a large batch; deterministic, so the
batches, hence the float rounding, do not depend on timing.)"""


class _Tree:
    """A radix tree of distinct token sequences ``head + tail`` (``tails`` sorted, all
    sharing ``head``). Node 0 is the root (no tokens); node ``n`` holds the tokens at
    positions ``begin[n]:end[n]`` of sequence ``ref[n]``; its children are
    ``order[first_kid[n]:first_kid[n + 1]]``."""

    def __init__(self, head: tuple[int, ...], tails: list[tuple[int, ...]]):
        self.head, self.tails, shared = head, tails, len(head)
        parent, end, ref = [-1], [0], [0]
        self.node_of = [0] * len(tails)  # the node where each sequence ends
        stack = [0]
        if shared:  # one node for what every sequence shares
            parent.append(0), end.append(shared), ref.append(0)
            stack.append(1)
        prev: tuple[int, ...] = ()
        for k, s in enumerate(tails):
            common, most = 0, min(len(s), len(prev))
            while common < most and s[common] == prev[common]:
                common += 1
            common += shared
            last = -1
            while end[stack[-1]] > common:
                last = stack.pop()
            if end[stack[-1]] < common:  # split the edge into `last` where `s` branches off
                parent.append(stack[-1]), end.append(common), ref.append(ref[last])
                parent[last] = len(end) - 1
                stack.append(len(end) - 1)
            if shared + len(s) > common:
                parent.append(stack[-1]), end.append(shared + len(s)), ref.append(k)
                stack.append(len(end) - 1)
            self.node_of[k] = stack[-1]
            prev = s
        self.parent, self.end, self.ref = np.array(parent), np.array(end), np.array(ref)
        self.begin = np.where(self.parent >= 0, self.end[np.maximum(self.parent, 0)], 0)
        self.order = np.argsort(self.parent[1:], kind="stable") + 1
        self.first_kid = np.searchsorted(self.parent[self.order], np.arange(len(end) + 1))
        # each node's first token (what its parent's last logits predict)
        self.first_token = np.array(
            [0]  # (the root)
            + [
                tails[r][b - shared] if b >= shared else head[b]
                for r, b in zip(ref[1:], self.begin[1:].tolist(), strict=True)
            ]
        )

    def kids(self, n: int) -> np.ndarray:
        return self.order[self.first_kid[n] : self.first_kid[n + 1]]

    def tokens(self, n: int, lo: int, hi: int) -> tuple[int, ...]:
        """The tokens at positions ``lo:hi`` of node ``n``'s sequences."""
        shared, tail = len(self.head), self.tails[self.ref[n]]
        if lo >= shared:
            return tail[lo - shared : hi - shared]
        return self.head[lo:hi] + tail[: max(0, hi - shared)]


def _spans(widths: list[int], counts: list[int], rows: int) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` of ascending distinct ``widths`` (``counts`` nodes each) to batch
    together, minimising ``PASS_COST`` per pass of at most ``rows`` plus the padded slots
    (each node padded to the span's widest): a few-token node (an answer, a shared word) is
    not padded to a whole question's length unless that is cheaper than another pass."""
    ends = np.concatenate([[0], np.cumsum(counts)]).tolist()
    best, cut = [0.0] + [np.inf] * len(widths), [0] * (len(widths) + 1)
    for b in range(1, len(widths) + 1):  # spans of at most 64 distinct widths: cheap
        for a in range(max(0, b - 64), b):
            n = ends[b] - ends[a]
            cost = best[a] + -(-n // rows) * PASS_COST + n * widths[b - 1]
            if cost < best[b]:
                best[b], cut[b] = cost, a
    spans, b = [], len(widths)
    while b:
        spans.append((cut[b], b))
        b = cut[b]
    return spans[::-1]


def _merge(pieces: list[tuple[object, torch.Tensor | None, torch.Tensor]]):
    """One cache and attention mask for the ``rows`` of each ``(cache, mask, rows)`` piece,
    in order (``cache`` ``None``: the root, nothing before). The caches themselves are left
    as they were. Pieces of different lengths are right-padded with masked zero keys; a
    sliding-window layer that has dropped keys cannot be merged (``_NearWindow``)."""
    lengths = [0 if mask is None else mask.shape[1] for _, mask, _ in pieces]
    width = max(lengths)
    masks = []
    for (_, mask, rows), n in zip(pieces, lengths, strict=True):
        part = torch.zeros((len(rows), width), dtype=torch.long)
        if n:
            part[:, :n] = mask[rows]
        masks.append(part)
    like = next((c for c, _, _ in pieces if c is not None), None)
    if like is None:
        return None, torch.cat(masks)
    merged = copy.copy(like)
    merged.layers = []
    for i, layer in enumerate(like.layers):
        layer = copy.copy(layer)
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            if len(pieces) > 1:
                if any(
                    c is not None and c.layers[i].keys.shape[2] != n
                    for (c, _, _), n in zip(pieces, lengths, strict=True)
                ):
                    raise _NearWindow  # a sliding window dropped keys: rows no longer align
                if isinstance(getattr(layer, "cumulative_length", None), int):
                    layer.cumulative_length = width  # (a sliding-window layer's key count)
            keys, values = [], []
            for (cache, _, rows), n in zip(pieces, lengths, strict=True):
                if cache is None:
                    shape = (len(rows), layer.keys.shape[1], width, layer.keys.shape[3])
                    keys.append(layer.keys.new_zeros(shape))
                    values.append(layer.values.new_zeros(shape[:3] + layer.values.shape[3:]))
                    continue
                src = cache.layers[i]
                at = rows.to(src.keys.device)
                pad = (0, 0, 0, width - n)
                keys.append(F.pad(src.keys.index_select(0, at), pad))
                values.append(F.pad(src.values.index_select(0, at), pad))
            layer.keys, layer.values = torch.cat(keys), torch.cat(values)
        merged.layers.append(layer)
    return merged, torch.cat(masks)


def _sliding_window(model) -> int | None:
    """The smallest attention window of a sliding-window model, else ``None``."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if window and (layer_types is None or "sliding_attention" in layer_types):
        return int(window)
    return None


class _NearWindow(Exception):
    """Padding would push some keys out of a sliding attention window."""


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every sequence shares (one slice comparison per sequence)."""
    first, n = list(seqs[0]), min(len(s) for s in seqs)
    for s in seqs:
        if list(s[:n]) != first[:n]:  # they differ before `n`: find where
            n = next(i for i in range(n) if s[i] != first[i])
    return n


@torch.no_grad()
def continuation_logprobs(
    model,
    sequences: Sequence[Sequence[int]],
    starts: Sequence[int],
    *,
    batch_size: int = 64,
    device=None,
) -> np.ndarray:
    """``log p(seq[start:] | seq[:start])`` (natural log, float64) for every token sequence
    and its ``start`` (``1 <= start <= len(seq)``; ``start == len(seq)`` scores 0).

    Equal to scoring every sequence in full and summing its token log-probabilities from
    ``start`` on (to float32 rounding), but each distinct prefix runs through the model once
    (module docstring). ``batch_size`` bounds the rows of one forward pass (each a branch of
    a cached prefix), hence the memory."""
    seqs = [s if isinstance(s, tuple | list) else list(s) for s in sequences]
    starts = [int(s) for s in starts]
    if len(starts) != len(seqs):
        raise ValueError(f"{len(seqs)} sequences but {len(starts)} starts")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} is invalid: allowed >= 1")
    lengths = [len(s) for s in seqs]
    for n, st in zip(lengths, starts, strict=True):
        if not 1 <= st <= n:
            raise ValueError(
                f"start={st} is invalid for a sequence of {n} tokens: allowed 1..{n} "
                "(the first token has no context to be scored on)"
            )
    scores = np.zeros(len(seqs))
    scored = [i for i, (n, st) in enumerate(zip(lengths, starts, strict=True)) if st < n]
    if not scored:
        return scores
    shared = common_prefix_length([seqs[i] for i in scored])
    head = tuple(seqs[scored[0]][:shared])
    tails = [tuple(seqs[i][shared:]) for i in scored]  # short, so quick to sort and hash
    distinct = sorted(set(tails))
    index = {s: k for k, s in enumerate(distinct)}
    tree = _Tree(head, distinct)
    ends = np.array([tree.node_of[index[t]] for t in tails])
    start = np.array([starts[i] for i in scored])
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    window = _sliding_window(model)
    was = model.training
    model.eval()
    try:
        try:
            flat = _Scorer(model, tree, ends, start, batch_size, dev, window).run()
        except _NearWindow:
            log.info("sequences near the %d-token attention window: one row per pass", window)
            flat = _Scorer(model, tree, ends, start, 1, dev, window).run()  # no padding
    finally:
        model.train(was)

    # each sequence: its tokens from `start` on, node by node from where it ends upwards
    total = np.zeros(len(ends))
    at, alive = ends.copy(), np.ones(len(ends), dtype=bool)
    padded = np.append(flat, 0.0)  # reduceat needs every bound inside the array
    offset = np.concatenate([[0], np.cumsum(tree.end - tree.begin)])
    while alive.any():
        n, st = at[alive], start[alive]
        lo = offset[n] + np.maximum(st, tree.begin[n]) - tree.begin[n]
        total[alive] += np.add.reduceat(padded, np.column_stack([lo, offset[n + 1]]).ravel())[::2]
        alive[np.flatnonzero(alive)[tree.begin[n] <= st]] = False
        at[alive] = tree.parent[at[alive]]
    if np.isnan(total).any():
        raise RuntimeError("a scored token was not computed (a bug in the scorer)")
    scores[scored] = total
    return scores


class _Scorer:
    """The forward passes over one tree: ``run()`` gives every node token's log-probability
    given all tokens before it (NaN where no sequence scores it), one slot per token.

    With ``pack``, a node's row also carries its children that no further node needs the
    cache of (an item's answers, a candidate's second-to-last digit under its third-to-last),
    each attending to the node and itself only (a tree attention mask): no pass and no cache
    copy of their own."""

    def __init__(self, model, tree: _Tree, ends, start, rows: int, dev, window):
        self.model, self.tree, self.rows, self.dev, self.window = model, tree, rows, dev, window
        parent, nodes = tree.parent, len(tree.end)
        # first scored token in each node's subtree (children have later ends than parents)
        first = np.full(nodes, np.iinfo(np.int64).max)
        np.minimum.at(first, ends, start)
        by_end = np.argsort(-tree.end[1:], kind="stable") + 1
        bounds = np.flatnonzero(np.diff(tree.end[by_end])) + 1
        for level in np.split(by_end, bounds):
            np.minimum.at(first, parent[level], first[level])
        inner = np.zeros(nodes, dtype=bool)
        inner[parent[1:]] = True
        # an inner node runs all its tokens (its children need the cache); a leaf all but
        # its last; the root none
        fed = np.where(inner, tree.end - tree.begin, tree.end - tree.begin - 1)
        fed[0] = 0
        # how many of a node's last positions predict scored tokens (need logits)
        keep = np.clip(tree.begin + fed - np.maximum(tree.begin, first - 1), 0, fed)
        offset = np.concatenate([[0], np.cumsum(tree.end - tree.begin)])
        self.flat = np.full(offset[-1], np.nan)
        config = getattr(model, "config", None)
        attention = getattr(config, "_attn_implementation", None)
        self.pack = window is None and attention in ("sdpa", "eager")
        # carried: run in the parent's row (pack; nothing below needs its cache); later:
        # waits for the parent's cache; neither: scored from the parent's last logits
        runs = fed > 0
        needed = np.zeros(nodes, dtype=bool)
        needed[parent[1:][runs[1:]]] = True  # some child runs on its cache
        self.carried = runs & ~needed & (parent > 0) & self.pack
        self.later = runs & ~self.carried
        self.later[0] = False
        has_later = np.zeros(nodes, dtype=bool)
        has_later[parent[self.later]] = True  # its pass's cache must be kept
        width = fed.copy()
        np.add.at(width, parent[self.carried], fed[self.carried])
        self.fed, self.keep, self.width = fed.tolist(), keep.tolist(), width.tolist()
        self.offset, self.has_later = offset, has_later
        if self.pack:
            embeddings = model.get_input_embeddings()
            self.dtype = embeddings.weight.dtype if embeddings is not None else torch.float32

    def run(self) -> np.ndarray:
        # waiting nodes by width (tokens to run): lists of (pass, node, row) in pass order
        self.waiting: dict[int, list[tuple[int, int, int]]] = {}
        self.caches = {0: [None, None, 0]}  # pass -> [cache, mask, nodes waiting on it]
        self.passes = 0
        kids = self.tree.kids(0)
        self._wait(0, [(int(n), 0) for n in kids[self.later[kids]]])
        while any(self.waiting.values()):
            self._run(self._pick())
        return self.flat

    def _wait(self, p: int, children: list[tuple[int, int]]) -> None:
        for n, row in children:
            self.waiting.setdefault(self.width[n], []).append((p, n, row))
        self.caches[p][2] += len(children)

    def _pick(self) -> list[tuple[int, int, int]]:
        """The next pass: in the cheapest batching of the waiting nodes by width, the span
        with the newest node, its newest ``rows`` nodes."""
        widths = sorted(w for w, v in self.waiting.items() if v)
        newest = max(self.waiting[w][-1][0] for w in widths)
        spans = _spans(widths, [len(self.waiting[w]) for w in widths], self.rows)
        a, b = next(
            (a, b) for a, b in spans if any(self.waiting[w][-1][0] == newest for w in widths[a:b])
        )
        lists = [self.waiting[w] for w in widths[a:b]]
        picked = []
        while len(picked) < self.rows and any(lists):
            picked.append(max((v for v in lists if v), key=lambda v: v[-1][0]).pop())
        return picked

    def _run(self, picked: list[tuple[int, int, int]]) -> None:
        """One forward pass of the ``picked`` nodes (and what they carry) on their parents'
        cache rows; their later children then wait for this pass's cache."""
        tree, fed = self.tree, self.fed
        by_pass: dict[int, list[tuple[int, int]]] = {}
        for p, n, row in picked:
            by_pass.setdefault(p, []).append((n, row))
        nodes = [n for group in by_pass.values() for n, _ in group]
        pieces = [
            (*self.caches[p][:2], torch.tensor([row for _, row in group]))
            for p, group in by_pass.items()
        ]
        past, past_mask = _merge(pieces)
        width = max(self.width[n] for n in nodes)
        x = [[0] * width for _ in nodes]
        positions = [[0] * width for _ in nodes]
        # segment of each new column: -1 padding, 0 the row's node, 1.. what it carries
        segment = [[-1] * width for _ in nodes]
        # the logits to read: row, column, token, slot in `flat`
        r_idx: list[int] = []
        c_idx: list[int] = []
        tok: list[int] = []
        slot: list[int] = []
        for r, n in enumerate(nodes):
            col = width - self.width[n]  # left-padded: the row ends at the last column
            kids = tree.kids(n)
            for k, m in enumerate([n, *kids[self.carried[kids]].tolist()]):
                f, b, end, keep = fed[m], int(tree.begin[m]), int(tree.end[m]), self.keep[m]
                own = tree.tokens(m, b, end)
                x[r][col : col + f] = own[:f]
                positions[r][col : col + f] = range(b, b + f)
                segment[r][col : col + f] = [k] * f
                # positions b+f-keep .. b+f-1 predict the node's next tokens; a last position
                # (an inner node's) predicts each child's first token
                inside = min(keep, end - 1 - (b + f - keep))
                lo = f - keep
                r_idx += [r] * inside
                c_idx += range(col + lo, col + lo + inside)
                tok += own[lo + 1 : lo + 1 + inside]
                slot += range(self.offset[m] + lo + 1, self.offset[m] + lo + 1 + inside)
                if keep and b + f == end:
                    kids_m = tree.kids(m)
                    r_idx += [r] * len(kids_m)
                    c_idx += [col + f - 1] * len(kids_m)
                    tok += tree.first_token[kids_m].tolist()
                    slot += self.offset[kids_m].tolist()
                col += f
        x, positions = torch.tensor(x), torch.tensor(positions)
        segment = torch.tensor(segment)
        own = (segment == 0).long()  # what the node's later children may attend to
        if self.pack:
            mask = self._tree_mask(past_mask, segment)
        else:
            mask = torch.cat([past_mask, own], 1)
            if self.window is not None and mask.shape[1] >= self.window and not mask.all():
                raise _NearWindow
        cache_needed = bool(self.has_later[nodes].any())
        kept = width - min(c_idx, default=width - 1)
        out = self.model(
            input_ids=x.to(self.dev),
            attention_mask=mask.to(self.dev),
            position_ids=positions.to(self.dev),
            past_key_values=past,
            use_cache=cache_needed,
            logits_to_keep=kept,
        )
        if r_idx:
            logits = out.logits[:, -kept:].float()
            ri, ci = torch.tensor(r_idx), torch.tensor(c_idx) - (width - kept)
            values = logits[ri, ci, torch.tensor(tok)] - torch.logsumexp(logits, -1)[ri, ci]
            self.flat[slot] = values.double().cpu().numpy()
        for p, group in by_pass.items():  # parents' caches no node waits on any more
            self.caches[p][2] -= len(group)
            if not self.caches[p][2]:
                del self.caches[p]
        if cache_needed:
            self.passes += 1
            self.caches[self.passes] = [out.past_key_values, torch.cat([past_mask, own], 1), 0]
            later = []
            for r, n in enumerate(nodes):
                kids = tree.kids(n)
                later += [(int(c), r) for c in kids[self.later[kids]]]
            self._wait(self.passes, later)

    def _tree_mask(self, past_mask: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
        """Additive ``[rows, 1, new, past + new]`` mask: every new token sees its row's past
        and, among the new ones, the earlier tokens of its own segment, and a carried
        child's tokens see the node's."""
        new = segment.shape[1]
        mine, theirs = segment[:, :, None], segment[:, None, :]
        causal = torch.ones((new, new), dtype=torch.bool).tril()
        sees = causal & (theirs >= 0) & ((mine == theirs) | ((theirs == 0) & (mine > 0)))
        past = past_mask.bool()[:, None, :].expand(-1, new, -1)
        allowed = torch.cat([past, sees], 2)[:, None]
        zero = torch.zeros((), dtype=self.dtype)
        return torch.where(allowed, zero, torch.finfo(self.dtype).min)
