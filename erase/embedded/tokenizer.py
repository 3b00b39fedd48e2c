"""An offline CLIP tokenizer, built from the BPE vocabulary that open_clip ships.

The hub's ``openai/clip-vit-*`` tokenizers cannot be downloaded here, but open_clip carries
the same byte-pair merges, so the real 49,408-token CLIP vocabulary can be rebuilt exactly.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

from ..errors import EraseError

CLIP_VOCAB_SIZE = 49408
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable-unicode table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _bpe_path() -> Path:
    try:
        import open_clip
    except ImportError:
        raise EraseError(
            "open_clip is not installed, so the CLIP BPE vocabulary is missing; "
            "run `pip install open-clip-torch`"
        ) from None
    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not path.exists():
        raise EraseError(
            f"open_clip has no BPE vocabulary at {str(path)!r}; reinstall open-clip-torch"
        )
    return path


def write_clip_tokenizer_files(folder: str | os.PathLike, model_max_length: int = 77) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer configs of CLIP into ``folder``.

    The layout is what ``CLIPTokenizer.from_pretrained(folder)`` reads; the constructor with
    explicit file arguments is avoided because transformers 5 silently builds a 3-token
    tokenizer from it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(_bpe_path()) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m.split()) for m in merges] + [BOS_TOKEN, EOS_TOKEN]
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise EraseError(
            f"open_clip's BPE file gives {len(vocab)} tokens, not {CLIP_VOCAB_SIZE}; "
            "reinstall open-clip-torch"
        )
    encoder = {tok: i for i, tok in enumerate(vocab)}
    (folder / "vocab.json").write_text(json.dumps(encoder, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN}
    special["pad_token"] = EOS_TOKEN
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = dict(special, model_max_length=model_max_length, do_lower_case=True)
    config["tokenizer_class"] = "CLIPTokenizer"
    config["clean_up_tokenization_spaces"] = False
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder


def build_clip_tokenizer(model_max_length: int = 77):
    """Return a real ``transformers.CLIPTokenizer`` (49,408 tokens), built without the hub."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="clip_tokenizer_") as tmp:
        write_clip_tokenizer_files(tmp, model_max_length=model_max_length)
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    if len(tokenizer) != CLIP_VOCAB_SIZE:
        raise EraseError(
            f"the rebuilt CLIP tokenizer has {len(tokenizer)} tokens, not {CLIP_VOCAB_SIZE}; "
            "check the installed transformers version"
        )
    return tokenizer
