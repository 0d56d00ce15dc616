"""Study 3's `paper` recipe on a GPU: full, LoRA, DP full and DP-LoRA fine-tuning of a
1B-parameter causal LM on CustomerSim dialogues, the CUDA path checked, and what the full
profile costs.

Takes notebooks/params/03_lora_vs_dp/paper.yaml as it is (batch 64 in physical chunks of 16,
256 tokens, epsilon 8 by PLD with a PRV bound, 6-digit canaries enumerated exactly) and
changes only what a machine without hub access needs: the model may be a local folder
(``--model``) or a randomly initialised model of Llama-3.2-1B's shape (``--random-llama-1b``:
same cost, meaningless memorisation; SmolLM2's tokenizer supplies the token ids), and the
run is shortened to ``--train`` dialogues for one epoch.

It prints the relative error between DP's summed per-sample gradients (sigma = 0, clipping
never reached) and autograd's on the device for the full model and for LoRA, then per
method: seconds per step, peak GPU memory, trainable parameters, epsilon with its bound,
the time to score the canaries exactly, and whether a rerun gives the same numbers;
finally the paper profile's cost projected from the measured step times.

    python benchmarks/lora_vs_dp_paper_recipe.py --random-llama-1b [--tokenizer PATH]
    python benchmarks/lora_vs_dp_paper_recipe.py --model meta-llama/Llama-3.2-1B
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def random_llama_1b(folder: Path, tokenizer: Path | None, tiny: bool = False) -> Path:
    """A Llama-3.2-1B-shaped causal LM (16 layers, hidden 2048, GQA 32/8 heads, tied
    embeddings) with random weights and SmolLM2's tokenizer (or the one in ``tokenizer``);
    ``tiny``: 2 layers of width 64, to dry-run this script on a CPU."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from privbias_lib.models import BUILTIN_MODELS, cached_checkpoint

    source = tokenizer or cached_checkpoint(BUILTIN_MODELS["smollm2-135m-instruct"].locate())
    tok = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64 if tiny else 2048,
        intermediate_size=128 if tiny else 8192,
        num_hidden_layers=2 if tiny else 16,
        num_attention_heads=4 if tiny else 32,
        num_key_value_heads=2 if tiny else 8,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def gradient_checks(params, data, device: str) -> None:
    """Full-model and LoRA DP gradients with sigma = 0 equal autograd's."""
    from _dp_checks import dropout_off, summed_gradient_errors

    from privbias_lib.studies import lora_vs_dp as study
    from privbias_lib.training.batches import encode_causal
    from privbias_lib.training.trainable import prepare

    for label in ("dp_full", f"dp_lora-r{params.dp_lora_rank}"):
        spec = next(r for r in study.plan_runs(params) if r["label"] == label)
        base, tok = study._load(params, spec["model"])
        base = prepare(base, study.train_config(params, spec).trainable, "CAUSAL_LM")
        dropout_off(base)
        encoded = encode_causal(tok, data.train.text.head(16).tolist(), 128)
        err = summed_gradient_errors(base, encoded, device, ("hooks",), physical=4, causal=True)
        print(f"  {label} (hooks): relative error {err['hooks']:.2e}")
        del base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="local folder or hub id (default: the first paper model)")
    ap.add_argument("--random-llama-1b", action="store_true")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer files for the random model")
    ap.add_argument("--train", type=int, default=512, help="training dialogues")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--skip-gradient-check", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="random model: a tiny one (dry runs)")
    ap.add_argument("--canary-digits", type=int, help="override (dry runs on a CPU)")
    ap.add_argument("--canaries", type=int, nargs="+", help="override CANARY_REPEATS")
    args = ap.parse_args()

    import warnings

    import torch

    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    warnings.filterwarnings("ignore", category=UserWarning, module="opacus")

    from privbias_lib.store import RunStore
    from privbias_lib.studies import lora_vs_dp as study

    work = Path(tempfile.mkdtemp(prefix="privbias-lora-vs-dp-recipe-"))
    profile = study.STUDY.resolve("paper")  # the notebook's defaults with the paper's changes
    model = args.model or profile["MODELS"][0]
    if args.random_llama_1b:
        model = str(random_llama_1b(work / "llama-1b-random", args.tokenizer, args.tiny))
    paper_train, paper_epochs = profile["N_TRAIN"], profile["EPOCHS"]
    paper_models = len(profile["MODELS"])
    paper_canary_dialogues = sum(profile["CANARY_REPEATS"])
    profile.update(
        OUTPUT_DIR=str(work / "out"),
        MODELS=[model],
        N_TRAIN=args.train,
        N_TEST=min(args.train, profile["N_TEST"]),
        EPOCHS=1,
        DEVICE=args.device,
    )
    if args.canary_digits:
        profile["CANARY_DIGITS"] = args.canary_digits
    if args.canaries:
        profile["CANARY_REPEATS"] = args.canaries
    params = study.STUDY.validate(profile)
    data = study.load_data(params)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; model {model}")
    if not args.skip_gradient_check:
        print("gradient check (sigma = 0, clipping norm 1e6, 16 dialogues, physical batch 4):")
        gradient_checks(params, data, args.device)

    t0 = time.perf_counter()
    records = study.STUDY.execute(params, data, RunStore(work / "runs"))
    print(f"study on {len(data.train)} dialogues, 1 epoch: {time.perf_counter() - t0:.0f} s")
    per_step = {}
    for r in records:
        exposure = ", ".join(f"{c['repeats']}x {c['exposure']:.2f}" for c in r["canaries"])
        if r["cost"] is None:
            print(f"  {r['label']}: scoring {r['seconds']['measure']:.1f} s; exposure {exposure}")
            continue
        c, p = r["cost"], r["privacy"]
        per_step[r["label"]] = c["seconds_per_step"]
        eps = (
            f"sigma {p['sigma']:.3f}, eps {p['epsilon']:.2f} ({p['accountant']}), bound "
            f"{p['epsilon_bound']:.2f} ({p['bound_accountant']})"
            if p
            else "non-private"
        )
        print(
            f"  {r['label']}: {c['steps']} steps ({c['grad_sample_mode'] or 'plain'}), "
            f"{c['seconds_per_step']:.2f} s/step, peak {c['peak_memory_mb']:.0f} MB, "
            f"{c['trainable_parameters'] / 1e6:.1f}M trainable, leakage "
            f"{r['report']['leakage']:+.3f}, scoring {r['seconds']['measure']:.1f} s; {eps}"
        )
    dp_run = next(r for r in records if r["method"] == "dp_lora")
    spec = {k: dp_run[k] for k in ("run", "model", "method", "label", "rank", "seed")}
    base, labels = study.BaseScores(params, data).get(model)
    again = study.train_and_measure(params, spec, data, base, labels)
    first, second = dp_run["report"]["leakage"], again["report"]["leakage"]
    print(
        f"  rerun of {dp_run['label']}: leakage {first:+.6f} then {second:+.6f} "
        f"(identical: {first == second}; difference {abs(first - second):.1e})"
    )
    steps = paper_epochs * -(-(paper_train + paper_canary_dialogues) // params.batch_size)
    hours = steps * sum(per_step.values()) / 3600
    print(
        f"projection for the paper profile ({steps} steps per run, {len(per_step)} runs per "
        f"model): about {hours:.1f} GPU hours per 1B model on this device, "
        f"{paper_models} models (sizes 1-2B) about {paper_models * hours:.0f}-"
        f"{2 * paper_models * hours:.0f}"
    )


if __name__ == "__main__":
    main()
