"""Study 2's `paper` recipe on a GPU: DP-LoRA on a roberta-base classifier with EW-Tune's
batch of 2000, the CUDA path checked, and what the full profile costs.

Takes notebooks/params/02_ew_tune/paper.yaml as it is (roberta-base, LoRA on query/value,
logical batch 2000 in physical chunks, clipping 10, Poisson sampling, noise calibrated by
each accountant) and changes only what a machine without hub access needs: the model may be
a local folder (``--model``) or a randomly initialised roberta-base (``--random-roberta-base``,
the same architecture and so the same cost; accuracies are then meaningless; the offline
MiniLM tokenizer supplies token ids), and the data is the offline RedditBias (a GLUE-sized
task needs the hub). A few steps of one seed run per accountant.

It prints first the relative error between DP-LoRA's summed per-sample gradients (sigma = 0,
no clipping reached) and autograd's on the device, then per run: steps, seconds per step,
peak GPU memory, sigma and epsilon (calibrating accountant and PLD), and whether a rerun
reproduces the validation loss exactly; finally it projects the paper profile's cost on
SST-2 (660 steps per run, non-private + 3 accountants, 3 seeds) from the measured step time.

    python benchmarks/ew_tune_paper_recipe.py --random-roberta-base [--tokenizer PATH]
    python benchmarks/ew_tune_paper_recipe.py --model FacebookAI/roberta-base
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def random_roberta_base(folder: Path, tokenizer: Path | None) -> Path:
    """A roberta-base-shaped classifier with random weights and MiniLM's tokenizer (or
    the tokenizer files in ``tokenizer``)."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    from privbias_lib.models import BUILTIN_MODELS

    torch.manual_seed(0)
    RobertaForSequenceClassification(RobertaConfig(num_labels=2)).save_pretrained(folder)
    source = tokenizer or BUILTIN_MODELS["minilm-l6"].locate()
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def gradient_check(params, data, device: str) -> None:
    """DP-LoRA's summed per-sample gradient with sigma = 0 equals autograd's."""
    from _dp_checks import dropout_off, summed_gradient_errors

    from privbias_lib.models import load_model, quiet_transformers
    from privbias_lib.studies.ew_tune import train_config
    from privbias_lib.training.batches import encode_classification
    from privbias_lib.training.trainable import prepare

    with quiet_transformers():
        base, tok = load_model(params.model, "classification", num_labels=2, device=device)
    n_train = int((data.split == "train").sum())
    base = prepare(base, train_config(params, "prv", 0, n_train).trainable, "SEQ_CLS")
    dropout_off(base)
    sample = data[data.split == "train"].head(32)
    encoded = encode_classification(tok, sample.text.tolist(), sample.label.tolist(), 128)
    err = summed_gradient_errors(base, encoded, device, ("hooks",))["hooks"]
    print(f"  DP-LoRA (hooks) summed per-sample gradient vs autograd: relative error {err:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="local folder or hub id (default: the paper profile's)")
    ap.add_argument("--random-roberta-base", action="store_true")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer files for the random model")
    ap.add_argument("--train-examples", type=int, default=8000)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    import warnings

    import torch

    warnings.filterwarnings("ignore", message="Full backward hook is firing")

    from privbias_lib.store import RunStore
    from privbias_lib.studies import ew_tune

    work = Path(tempfile.mkdtemp(prefix="privbias-ew-tune-recipe-"))
    model = args.model
    if args.random_roberta_base:
        model = str(random_roberta_base(work / "roberta-base-random", args.tokenizer))
    profile = ew_tune.STUDY.resolve("paper")  # the notebook's defaults with the paper's changes
    profile.update(
        OUTPUT_DIR=str(work / "out"),
        DATASET="redditbias",
        DATA_SOURCE=None,
        MODEL=model or profile["MODEL"],
        MAX_TRAIN_EXAMPLES=args.train_examples,
        MAX_EVAL_EXAMPLES=500,
        EPOCHS=1,
        SEEDS=profile["SEEDS"][:1],
        DEVICE=args.device,
    )
    params = ew_tune.STUDY.validate(profile)
    data = ew_tune.load_data(params)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; model {params.model}")
    print("gradient check (sigma = 0, clipping norm 1e6, 32 comments, physical batch 8):")
    gradient_check(params, data, args.device)

    records = ew_tune.STUDY.execute(params, data, RunStore(work / "runs"))
    per_step = {}
    for r in records:
        h, p = r["history"], r["privacy"]
        per_step[r["accountant"]] = h["wall_time_s"] / h["steps"]
        eps = (
            f"sigma {p['sigma']:.4f}, eps {p['epsilon']:.3f} ({p['accountant']}, {p['kind']}),"
            f" PLD {p['epsilon_bound']:.3f}"
            if p
            else "non-private"
        )
        print(
            f"  {r['run']}: {r['train_size']} examples, {h['steps']} steps "
            f"({h['grad_sample_mode']}), {per_step[r['accountant']]:.2f} s/step, peak "
            f"{h['peak_memory_mb']:.0f} MB, val loss {r['val_loss']:.4f}; {eps}"
        )
    dp_run = next(r for r in records if r["accountant"] is not None)
    spec = {k: dp_run[k] for k in ("run", "accountant", "seed")}
    again = ew_tune.train_and_evaluate(params, spec, data)
    same = again["val_loss"] == dp_run["val_loss"]
    print(f"  rerun of {dp_run['run']} gives the same validation loss: {same}")
    _, steps = ew_tune.task_setting("sst2")
    dp = [v for k, v in per_step.items() if k is not None]
    hours = 3 * steps * (per_step[None] + 3 * sum(dp) / len(dp)) / 3600
    print(
        f"projection for the paper profile on SST-2 ({steps} steps of ~2000 examples per run,"
        f" non-private + 3 accountants, 3 seeds): about {hours:.1f} GPU hours on this device"
    )


if __name__ == "__main__":
    main()
