"""Several encoders of one modality read side by side, as if they were one.

The feature store keeps each encoder's features under its own key (extracted
once, shared by every combination that names it); a joined view concatenates
their pooled vectors in the order named, and keeps the first encoder's token
sequence for heads that read tokens. `joined_identity` names the combination the
same way whether it is built from live encoders (serving) or from stored features
(training), so a model trained on "lite0 + opennsfw" refuses any other mix.
"""

from __future__ import annotations

from typing import Any

import torch

from mmsent.encoders.base import Encoder, EncoderOutput


def joined_identity(identities: list[dict[str, Any]]) -> dict[str, Any]:
    """One encoder's identity as it is; several as one record listing each in order."""
    if len(identities) == 1:
        return identities[0]
    return {
        "encoder": "+".join(str(i.get("encoder", "?")) for i in identities),
        "modality": identities[0].get("modality"),
        "dim": sum(int(i.get("dim", 0)) for i in identities),
        "joined": "pooled vectors concatenated; tokens of the first",
        "parts": identities,
    }


def first_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """The first encoder's identity of a `joined_identity` (one encoder's: itself)."""
    return identity.get("parts", [identity])[0]


class JoinedEncoder(Encoder):
    """`parts` (two or more encoders of one modality): pooled = their pooled vectors side by side."""

    def __init__(self, parts: list[Encoder]):
        modalities = {part.modality for part in parts}
        if len(parts) < 2 or len(modalities) != 1:
            raise ValueError("a joined encoder takes two or more encoders of one modality")
        super().__init__("+".join(part.name for part in parts))
        self.parts = list(parts)
        self.modality = parts[0].modality
        self.dim = sum(part.dim for part in parts)

    @property
    def draft_size(self) -> int | None:
        """The largest that any part needs, so every part gets the resolution it expects."""
        sizes = [getattr(part, "draft_size", None) for part in self.parts]
        return None if any(size is None for size in sizes) else max(sizes)

    def identity(self) -> dict[str, Any]:
        return joined_identity([part.identity() for part in self.parts])

    def preprocess(self, item: Any) -> tuple:
        return tuple(part.preprocess(item) for part in self.parts)

    def collate(self, items: list[tuple]) -> tuple:
        return tuple(part.collate([item[i] for item in items]) for i, part in enumerate(self.parts))

    def encode(self, batch: tuple) -> EncoderOutput:
        outputs = [part.encode(inputs) for part, inputs in zip(self.parts, batch, strict=True)]
        pooled = torch.cat([out.pooled for out in outputs], dim=1)
        return EncoderOutput(tokens=outputs[0].tokens, mask=outputs[0].mask, pooled=pooled)
