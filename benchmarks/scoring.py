"""The shared continuation scorer (``privbias_lib.scoring``) against the two hand-written
scorers it replaced, in one run: study 4's per-question branching of a shared few-shot
prefix cache (``score_answers``) and study 3's candidate trie (``candidate_logprobs``).

Private copies of the old implementations live below (not in the library). Each workload
times old and new alternately, ``--repeats`` times, and prints the median seconds per call,
the ratio new/old, the tokens each fed through the model (real tokens and padded slots),
the forward passes, and how far the scores differ (largest absolute and relative
difference; for candidates, how many exposure ranks changed). On a loaded machine, pass
``--threads 1``: two threads contending with other jobs slow small passes many-fold.

    .venv/bin/python benchmarks/scoring.py                     # SmolLM2, 40 items, 4 shots
    .venv/bin/python benchmarks/scoring.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch

from privbias_lib.prompting import _padded  # the padding the old scorer used too

CONTEXT = "Customer: Just so you know, the gate code is "  # a study 3 canary's context


# --- the old implementations (copies, for comparison only) ---------------------------------


@torch.no_grad()
def old_score_answers(model, tokenizer, texts, *, chat, batch_size=16):
    """``score_answers(reuse_prefix=True)`` before the shared scorer."""
    from privbias_lib.metrics.memorisation import common_prefix_length

    ids = [
        [list(x) for x in tokenizer(item, add_special_tokens=not chat)["input_ids"]]
        for item in texts
    ]
    starts = [common_prefix_length(item) for item in ids]
    dev = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval()
    return _old_score_branched(model, ids, starts, batch_size, dev, pad)


def _old_score_branched(model, ids, starts, batch_size, dev, pad):
    from privbias_lib.metrics.memorisation import common_prefix_length

    n_answers = len(ids[0])
    flat = [ids[i][j] for i in range(len(ids)) for j in range(n_answers)]
    shared = min(common_prefix_length(flat), min(starts) - 1)
    width = min(batch_size, len(ids))
    prefix_cache = None
    if shared:
        context = torch.tensor([flat[0][:shared]], device=dev)
        prefix_cache = model(
            input_ids=context.expand(width, -1), use_cache=True, logits_to_keep=1
        ).past_key_values
    scores = np.full((len(ids), n_answers), np.nan)
    order = sorted(range(len(ids)), key=lambda i: starts[i])
    for b in range(0, len(order), width):
        chunk = order[b : b + width]
        rows = chunk + [chunk[0]] * (width - len(chunk))
        questions = [ids[i][0][shared : starts[i] - 1] for i in rows]
        q_width = max(map(len, questions))
        cache = copy.deepcopy(prefix_cache) if prefix_cache is not None else None
        q_mask = torch.zeros((width, q_width), dtype=torch.long)
        if q_width:
            x, q_mask = _padded(questions, q_width, pad)
            positions = shared + torch.arange(q_width).expand(width, -1)
            mask = torch.cat([torch.ones((width, shared), dtype=torch.long), q_mask], 1)
            cache = model(
                input_ids=x.to(dev),
                attention_mask=mask.to(dev),
                position_ids=positions.to(dev),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            ).past_key_values
        answers = [ids[i][j][starts[i] - 1 :] for i in rows for j in range(n_answers)]
        a_width = max(map(len, answers))
        x, a_mask = _padded(answers, a_width, pad)
        positions = torch.tensor([starts[i] - 1 for i in rows for _ in range(n_answers)])
        positions = positions[:, None] + torch.arange(a_width)
        past_mask = torch.cat([torch.ones((width, shared), dtype=torch.long), q_mask], 1)
        mask = torch.cat([past_mask.repeat_interleave(n_answers, 0), a_mask], 1)
        if cache is not None:
            cache.batch_repeat_interleave(n_answers)
        logits = model(
            input_ids=x.to(dev),
            attention_mask=mask.to(dev),
            position_ids=positions.to(dev),
            past_key_values=cache,
            use_cache=cache is not None,
        ).logits
        logp = torch.log_softmax(logits.float(), -1)
        for r, i in enumerate(chunk):
            for j in range(n_answers):
                target = ids[i][j][starts[i] :]
                pos = torch.arange(len(target))
                scores[i, j] = float(logp[r * n_answers + j, pos, torch.tensor(target)].sum())
    return scores


@torch.no_grad()
def old_candidate_logprobs(model, tokenizer, prefix, candidates, *, batch_size=256):
    """``candidate_logprobs`` before the shared scorer: a trie, level by level."""
    from privbias_lib.metrics.memorisation import common_prefix_length

    ids = [list(x) for x in tokenizer([prefix + c for c in candidates])["input_ids"]]
    m = common_prefix_length(ids)
    context, tails = ids[0][:m], [tuple(x[m:]) for x in ids]
    children: dict[tuple, set[int]] = {}
    for tail in tails:
        for j in range(len(tail)):
            children.setdefault(tail[:j], set()).add(tail[j])
    dev = next(model.parameters()).device
    model.eval()
    logp: dict[tuple[tuple, int], float] = {}

    def keep(nodes, rows):
        for node, row in zip(nodes, rows, strict=False):
            for tok in children[node]:
                logp[(node, tok)] = float(row[tok])

    ctx = torch.tensor([context], device=dev)
    first = model(input_ids=ctx, use_cache=True)
    keep([()], torch.log_softmax(first.logits[:, -1].float(), -1).cpu())
    by_depth: dict[int, list[tuple]] = {}
    for node in children:
        if node:
            by_depth.setdefault(len(node), []).append(node)
    if by_depth:
        width = min(batch_size, max(len(v) for v in by_depth.values()))
        prefix_cache = model(input_ids=ctx.expand(width, -1), use_cache=True).past_key_values
        for depth in sorted(by_depth):
            nodes = by_depth[depth]
            for start in range(0, len(nodes), width):
                chunk = nodes[start : start + width]
                rows = chunk + [chunk[0]] * (width - len(chunk))
                out = model(
                    input_ids=torch.tensor(rows, device=dev),
                    past_key_values=copy.deepcopy(prefix_cache),
                    use_cache=True,
                )
                keep(chunk, torch.log_softmax(out.logits[: len(chunk), -1].float(), -1).cpu())
    return np.array([sum(logp[(t[:j], t[j])] for j in range(len(t))) for t in tails])


# --- measuring -------------------------------------------------------------------------------


class TokenCount:
    """Tokens fed through ``model`` while active: real ones and padded slots, and passes."""

    def __init__(self, model):
        self.model, self.real, self.slots, self.passes = model, 0, 0, 0

    def _hook(self, _module, _args, kwargs):
        x, mask = kwargs["input_ids"], kwargs.get("attention_mask")
        self.slots += x.numel()
        self.passes += 1
        if mask is None:
            self.real += x.numel()
        elif mask.dim() == 2:
            self.real += int(mask[:, -x.shape[1] :].sum())
        else:  # an additive 4D (tree attention) mask: a real token sees itself
            self.real += int((mask[:, 0, :, -x.shape[1] :].diagonal(dim1=1, dim2=2) == 0).sum())

    def __enter__(self):
        self.real = self.slots = self.passes = 0
        self.handle = self.model.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def exposure_ranks(scores: np.ndarray) -> np.ndarray:
    """Each candidate's rank as a secret: 1 + candidates more likely by over 1e-9 (as
    ``exposure`` counts)."""
    ordered = np.sort(scores)
    return 1 + len(scores) - np.searchsorted(ordered, scores + 1e-9, side="right")


def compare(model, name, old, new, repeats, ranks=False):
    """Median seconds of old and new (alternating), tokens fed, and the differences."""
    times = {"old": [], "new": []}
    out, fed = {}, {}
    for _ in range(repeats):
        for which, fn in (("old", old), ("new", new)):
            with TokenCount(model) as count:
                t0 = time.perf_counter()
                out[which] = np.asarray(fn())
                times[which].append(time.perf_counter() - t0)
            fed[which] = (count.real, count.slots, count.passes)
    sec = {k: statistics.median(v) for k, v in times.items()}
    diff = np.abs(out["new"] - out["old"])
    rel = diff / np.maximum(np.abs(out["old"]), 1e-12)
    changed = ""
    if ranks:
        moved = int((exposure_ranks(out["new"]) != exposure_ranks(out["old"])).sum())
        changed = f"{moved} of {out['new'].size}"
    print(
        f"| {name} | {sec['old']:.3f} | {sec['new']:.3f} | {sec['new'] / sec['old']:.2f} "
        f"| {fed['old'][0]:,} ({fed['old'][1]:,}) | {fed['new'][0]:,} ({fed['new'][1]:,}) "
        f"| {fed['old'][2]} | {fed['new'][2]} "
        f"| {diff.max():.1e} | {rel.max():.1e} | {changed or '-'} |",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--digits", type=int, nargs="*", default=[3, 4])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from privbias_lib.data import load_winobias
    from privbias_lib.metrics.memorisation import candidate_logprobs
    from privbias_lib.models import load_model, quiet_transformers
    from privbias_lib.prompting import Condition, choose_examples, prompt_texts, score_answers

    with quiet_transformers():
        model, tok = load_model(args.model, "causal-lm", device="cpu")
    chat = bool(tok.chat_template)
    items = load_winobias("test").sample(args.items, random_state=0)
    cond = Condition(f"{args.shots}-shot", shots=args.shots)
    texts = prompt_texts(items, choose_examples(load_winobias("dev"), cond, 0), cond, tok, chat)
    print(
        f"{args.model}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"medians of {args.repeats} alternating runs\n"
    )
    print(
        "| workload | old s | new s | new/old | old tokens (slots) | new tokens (slots) "
        "| old passes | new passes | max abs. diff | max rel. diff | exposure ranks changed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    style = "chat" if chat else "plain"
    compare(
        model,
        f"study 4: {args.items} items x 2 answers, {args.shots} shots ({style})",
        lambda: old_score_answers(model, tok, texts, chat=chat, batch_size=16),
        lambda: score_answers(model, tok, texts, chat=chat, batch_size=16),
        args.repeats,
    )
    for digits in args.digits:
        candidates = [str(i).zfill(digits) for i in range(10**digits)]
        compare(
            model,
            f"study 3: {10**digits:,} {digits}-digit candidates",
            lambda c=candidates: old_candidate_logprobs(model, tok, CONTEXT, c),
            lambda c=candidates: candidate_logprobs(model, tok, CONTEXT, c),
            args.repeats,
            ranks=True,
        )


if __name__ == "__main__":
    main()
