"""Head registry: every head is built by name with `create_head`.

    head = create_head("single_stream", image_dim=1280, text_dim=384, width=128)
    logits = head(image_features, text_features)   # [B, num_classes]

A head's hyperparameters are the keyword arguments of its class, less the ones
its registry entry fixes; `head_defaults(name)` lists them with their defaults.
`create_head` records what it built in `head.spec`, so a checkpoint can rebuild it:
`create_head(spec["name"], spec["image_dim"], spec["text_dim"], spec["num_classes"],
**spec["hparams"])`.

`head.explain(image, text)` returns JSON-safe values, one list entry per pair;
where defined, `image_share` (in [0, 1]) says how much the decision leaned on the image.
"""

from __future__ import annotations

import inspect
from typing import Any

from mmsent.errors import MmsentError
from mmsent.heads.base import Features, Head
from mmsent.heads.dual_stream import DualStreamHead
from mmsent.heads.pooled import ConcatHead, GatedHead, SingleModalityHead, TextPoolHead
from mmsent.heads.single_stream import SingleStreamHead

# name -> (class, keyword arguments the name fixes)
_LIGHT = {"use_tokens": False, "max_image_tokens": 1, "max_text_tokens": 1}
_REGISTRY: dict[str, tuple[type[Head], dict[str, Any]]] = {
    "text_only": (SingleModalityHead, {"modality": "text"}),
    "image_only": (SingleModalityHead, {"modality": "image"}),
    "concat": (ConcatHead, {}),
    "concat_text_pool": (TextPoolHead, {}),
    "gated_image": (GatedHead, {"gate": "image"}),
    "gated_text": (GatedHead, {"gate": "text"}),
    "single_stream": (SingleStreamHead, {"use_tokens": True}),
    "dual_stream": (DualStreamHead, {"use_tokens": True}),
    "single_stream_light": (SingleStreamHead, {**_LIGHT, "pool": "cls"}),
    "dual_stream_light": (DualStreamHead, {**_LIGHT, "pool": "first"}),
}

ABLATION_HEADS: tuple[str, ...] = ("text_only", "image_only")
FUSION_HEADS: tuple[str, ...] = (
    "concat",
    "concat_text_pool",
    "gated_image",
    "gated_text",
    "single_stream",
    "dual_stream",
    "single_stream_light",
    "dual_stream_light",
)
# Heads that need stored token sequences, and of which modalities (only those grids are gathered).
TOKEN_MODALITIES: dict[str, tuple[str, ...]] = {
    "single_stream": ("image", "text"),
    "dual_stream": ("image", "text"),
    "concat_text_pool": ("text",),
}
TOKEN_HEADS: tuple[str, ...] = tuple(TOKEN_MODALITIES)

_BUILD_ARGS = ("self", "image_dim", "text_dim", "num_classes")


def list_heads() -> list[str]:
    return list(_REGISTRY)


def _entry(name: str) -> tuple[type[Head], dict[str, Any]]:
    if name not in _REGISTRY:
        raise MmsentError(f"unknown head {name!r}; known heads: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def head_defaults(name: str) -> dict[str, Any]:
    """The hyperparameters `name` accepts, with their default values."""
    cls, fixed = _entry(name)
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.name not in _BUILD_ARGS and p.name not in fixed}


def head_needs_tokens(name: str) -> bool:
    return name in TOKEN_HEADS


def head_token_modalities(name: str) -> tuple[str, ...]:
    """The modalities whose token grids head `name` reads (none: it reads pooled vectors only)."""
    return TOKEN_MODALITIES.get(name, ())


def shared_hparams(name: str, hidden: int, dropout: float, input_dropout: float = 0.0) -> dict[str, Any]:
    """The run-wide options (classifier width, dropouts) that head `name` takes; the rest keep its
    defaults. A head whose default classifier has no hidden layer (the gated heads: a sigmoid
    gate, then one linear layer) keeps it that way."""
    defaults = head_defaults(name)
    chosen: dict[str, Any] = {"dropout": dropout, "input_dropout": input_dropout}
    if defaults.get("hidden", 0) > 0:
        chosen["hidden"] = hidden
    return {key: value for key, value in chosen.items() if key in defaults}


def create_head(name: str, image_dim: int, text_dim: int, num_classes: int = 3, **hparams: Any) -> Head:
    cls, fixed = _entry(name)
    defaults = head_defaults(name)
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise MmsentError(
            f"head {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(defaults) or 'none'}"
        )
    for what, value in (("image_dim", image_dim), ("text_dim", text_dim), ("num_classes", num_classes)):
        if not isinstance(value, int) or value < 1:
            raise MmsentError(f"{what} must be a positive integer, got {value!r}")
    resolved = {**defaults, **hparams}
    head = cls(image_dim, text_dim, num_classes, **resolved, **fixed)
    head.spec = {
        "name": name,
        "image_dim": image_dim,
        "text_dim": text_dim,
        "num_classes": num_classes,
        "hparams": resolved,
    }
    return head


__all__ = [
    "ABLATION_HEADS",
    "FUSION_HEADS",
    "TOKEN_HEADS",
    "Features",
    "Head",
    "create_head",
    "head_defaults",
    "head_needs_tokens",
    "head_token_modalities",
    "list_heads",
    "shared_hparams",
]
