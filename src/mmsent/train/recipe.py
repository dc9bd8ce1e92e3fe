"""A recipe: everything that turns stored features into a trained model, as one small record.

The head and its own settings (width, depth, attention heads, dropout), the
optimiser (learning rate, weight decay, batch size, epochs), the loss (kind,
class weighting, label smoothing) and whether the lexicon scores ride along with
the text vector. The main job trains its candidates from recipes (`recipe_for` turns
the run options into one), `mmsent search` searches them, `mmsent cv` scores them and
`mmsent ensemble` combines them; they read and write as plain YAML mappings. The
head `linear_probe` is the logistic-regression baseline (hparams: `C`, or none to
choose it inside the training rows).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mmsent.errors import MmsentError
from mmsent.files import write_text
from mmsent.heads import create_head, head_defaults, head_needs_tokens, head_token_modalities, shared_hparams

PROBE = "linear_probe"


def check_heads(names: list[str]) -> None:
    """Fail before any slow step if a head name is unknown."""
    for name in names:
        if name != PROBE:
            create_head(name, 8, 8)


@dataclass
class Recipe:
    head: str = "concat"
    hparams: dict[str, Any] = field(default_factory=dict)  # the head's own; the rest keep its defaults
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    epochs: int = 20  # with patience 0, exactly this many (cosine schedule to zero)
    patience: int = 0  # > 0: stop early on the validation fold's loss, as `mmsent run` does
    loss: Literal["ce", "focal"] = "ce"
    class_weights: float = 0.0  # power of the inverse class frequency: 0 none, 1 full, 0.5 between
    label_smoothing: float = 0.0
    lexicon: bool = False  # append the VADER scores to the text vector
    name: str = ""  # how tables name it; default: the head

    def __post_init__(self) -> None:
        self.name = self.name or self.head
        if self.head == PROBE:
            unknown = sorted(set(self.hparams) - {"C"})
            if unknown:
                raise MmsentError(f"recipe {self.name!r}: the linear probe takes only C, not {unknown}")
        else:
            create_head(self.head, 8, 8, **self.hparams)  # unknown head or setting: fail now, not mid-search
        if head_needs_tokens(self.head) and self.lexicon:
            raise MmsentError(
                f"head {self.head!r} reads token sequences; lexicon features are for pooled heads"
            )
        checks = (
            (self.lr > 0, "lr must be positive"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.patience >= 0, "patience must be >= 0"),
            (self.loss in ("ce", "focal"), "loss must be 'ce' or 'focal'"),
            (0 <= self.class_weights <= 1, "class_weights must be in [0, 1]"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
        )
        for ok, message in checks:
            if not ok:
                raise MmsentError(f"recipe {self.name!r}: {message}")

    @property
    def is_probe(self) -> bool:
        return self.head == PROBE

    @property
    def needs_tokens(self) -> tuple[str, ...]:
        """The modalities whose token grids the head reads (empty: pooled vectors only)."""
        return () if self.is_probe else head_token_modalities(self.head)

    def head_hparams(self) -> dict[str, Any]:
        return {**head_defaults(self.head), **self.hparams}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "recipe") -> Recipe:
        if not isinstance(data, dict):
            raise MmsentError(f"{source}: a recipe is a mapping, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MmsentError(
                f"{source}: unknown recipe field(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        try:
            return cls(**data)
        except TypeError as error:
            raise MmsentError(f"{source}: {error}") from None


def read_recipes(path: str | Path) -> list[Recipe]:
    """Recipes from a YAML file: a list of mappings, or {"recipes": [...]} (what `mmsent search` writes)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MmsentError("recipe file not found", path) from None
    except yaml.YAMLError as error:
        raise MmsentError(f"not valid YAML: {error}", path) from None
    if isinstance(data, dict) and "recipes" in data:
        data = data["recipes"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise MmsentError("expected a list of recipes (or a mapping with a 'recipes' list)", path)
    recipes = [Recipe.from_dict(item, f"{path}: recipe {i + 1}") for i, item in enumerate(data)]
    names = [r.name for r in recipes]
    if len(set(names)) != len(names):
        raise MmsentError(f"recipe names must differ; got {', '.join(names)}", path)
    return recipes


def write_recipes(path: str | Path, recipes: list[Recipe], note: str = "") -> Path:
    header = "".join(f"# {line}\n" for line in note.splitlines())
    body = yaml.safe_dump({"recipes": [r.to_dict() for r in recipes]}, sort_keys=False)
    return write_text(path, header + body)


def recipe_for(head: str, train) -> Recipe:
    """The recipe `mmsent run` trains `head` with under the run's `train` options: the same
    record `mmsent cv` and `mmsent compare` take, so all three give the same numbers."""
    return Recipe(
        head=head,
        hparams={}
        if head == PROBE
        else shared_hparams(head, train.hidden, train.dropout, train.input_dropout),
        lr=train.lr,
        weight_decay=train.weight_decay,
        batch_size=train.batch_size,
        epochs=train.max_epochs,
        patience=train.patience,
        loss=train.loss,
        class_weights=float(train.class_weights),
        label_smoothing=train.label_smoothing,
    )
