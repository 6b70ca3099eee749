"""The self-describing model artifact: ``model.keras`` plus ``card.json``, and loading it.

The card carries everything inference needs and everything a reader must know: the case,
feature names and units in channel order, the grid, the min-max scaling fitted on the
training years, the training period and data source (and whether it was synthetic), metrics,
library versions, and two checksums: ``weights_sha256`` of the weights file and
``artifact_sha256`` of everything that changes a forecast (the weights' checksum, the case,
features, grid, hours and both scalings). Loading checks both, so neither the weights nor the
card's scaling can be edited silently; the descriptive parts (name, metrics, training notes)
stay editable (``pm25 evaluate --record`` writes the metrics). Loading also refuses a model
made for other features or another grid.

A model trained with a margin (issue 14) reads its inputs on a window ``margin`` cells wider
than the card's grid on each side and forecasts on the grid itself (its network crops). The
card's ``margin`` says so, and :meth:`LoadedModel.predict` takes either the wider window or,
from a caller that only has the grid (the daily run today), the grid's tensor, whose edge
values it then repeats outwards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.scaling import MinMax

CARD_NAME = "card.json"
MODEL_NAME = "model.keras"
#: The card fields that change a forecast; ``artifact_sha256`` covers them and the weights.
OUTPUT_FIELDS = ("case", "features", "grid", "hours", "input_scaling", "target_scaling")
#: Fields that change a forecast too but that older cards lack: covered when not at their
#: default, so the checksums of cards written before them stay valid.
OPTIONAL_OUTPUT_FIELDS = {"margin": 0}


class ModelArtifactError(Exception):
    """The artifact is missing, corrupted, or does not match the inputs it is given."""


@dataclass
class ModelCard:
    """What a trained model is, how it was made, and how well it does."""

    name: str
    version: str
    case: int
    features: list[dict[str, str]]  # [{"name": ..., "unit": ...}] in channel order
    target: dict[str, str]
    grid: dict[str, Any]
    hours: int
    input_scaling: dict[str, list[float]]
    target_scaling: dict[str, list[float]]
    training: dict[str, Any]
    data_source: str
    synthetic: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    weights_sha256: str = ""
    artifact_sha256: str = ""
    created: str = ""
    margin: int = 0  # input cells beyond the grid on each side (issue 14)
    notes: str = ""  # for readers: what the model is for and why it ships (descriptive)

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls(**json.loads(text))

    def output_sha256(self) -> str:
        """The checksum of everything that changes a forecast: the weights' sha256 and the
        card's :data:`OUTPUT_FIELDS`, as canonical JSON."""
        payload = {"weights_sha256": self.weights_sha256}
        payload.update({name: getattr(self, name) for name in OUTPUT_FIELDS})
        payload.update(
            {
                name: getattr(self, name)
                for name, default in OPTIONAL_OUTPUT_FIELDS.items()
                if getattr(self, name) != default
            }
        )
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the weights."""
    import keras

    out = {"keras": keras.__version__, "backend": keras.backend.backend(), "numpy": np.__version__}
    try:
        if keras.backend.backend() == "jax":
            import jax

            out["jax"] = jax.__version__
        elif keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            out["tensorflow"] = tf.__version__
    except ImportError:  # pragma: no cover - the backend imported it already
        pass
    return out


def save_artifact(model: Any, card: ModelCard, folder: str | Path) -> Path:
    """Save ``model.keras`` and ``card.json`` (with the weights' sha256) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MODEL_NAME}.{os.getpid()}.keras"
    model.save(tmp)
    tmp.replace(folder / MODEL_NAME)
    card.weights_sha256 = sha256_file(folder / MODEL_NAME)
    card.artifact_sha256 = card.output_sha256()
    card.created = card.created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _write_card(card, folder / MODEL_NAME)
    return folder / MODEL_NAME


def _card_path(model_path: str | Path) -> Path:
    """The ``card.json`` beside a ``model.keras`` file (or in a folder)."""
    path = Path(model_path)
    return (path if path.is_dir() else path.parent) / CARD_NAME


def _write_card(card: ModelCard, model_path: str | Path) -> None:
    """Write the card beside ``model_path`` atomically: readers never see half a card."""
    card_path = _card_path(model_path)
    tmp = card_path.with_name(f".{CARD_NAME}.{os.getpid()}")
    tmp.write_text(card.to_json(), encoding="utf-8")
    tmp.replace(card_path)


def record_metrics(model_path: str | Path, metrics: dict[str, Any]) -> ModelCard:
    """Store test metrics in the card beside ``model_path``; the weights and their checksum
    are untouched."""
    card = read_card(model_path)
    card.metrics = metrics
    _write_card(card, model_path)
    return card


def read_card(model_path: str | Path) -> ModelCard:
    """Read the card beside a ``model.keras`` file (or in a folder)."""
    card_path = _card_path(model_path)
    if not card_path.is_file():
        raise ModelArtifactError(f"{card_path}: model card not found beside the model")
    try:
        return ModelCard.from_json(card_path.read_text(encoding="utf-8"))
    except (ValueError, TypeError) as exc:
        raise ModelArtifactError(f"{card_path}: not a valid model card ({exc})") from None


class LoadedModel:
    """A model loaded once per process, checked against its card, ready to forecast.

    Parameters
    ----------
    model_path
        The ``model.keras`` file (its ``card.json`` lies beside it).
    expected_features
        Feature names in the channel order the caller will supply; must match the card.
    expected_grid
        The service grid's description (:meth:`service.grid.Grid.describe`); the card's grid
        must match it whole: projection, origin, cell size and shape.
    """

    def __init__(
        self,
        model_path: str | Path,
        expected_features: list[str] | None = None,
        expected_grid: dict[str, Any] | None = None,
    ) -> None:
        path = Path(model_path)
        if path.is_dir():
            path = path / MODEL_NAME
        if not path.is_file():
            raise ModelArtifactError(f"{path}: model file not found")
        self.path = path
        self.card = read_card(path)
        actual = sha256_file(path)
        if actual != self.card.weights_sha256:
            raise ModelArtifactError(
                f"{path}: sha256 {actual[:12]}... does not match the card's "
                f"{self.card.weights_sha256[:12]}...: the weights were changed or corrupted"
            )
        if self.card.artifact_sha256 != self.card.output_sha256():
            raise ModelArtifactError(
                f"{_card_path(path)}: the card's artifact_sha256 does not match its case, "
                f"features, grid, hours and scaling: the card was edited or corrupted"
                if self.card.artifact_sha256
                else f"{_card_path(path)}: the card has no artifact_sha256; re-save the model"
            )
        if expected_features is not None and list(expected_features) != self.card.feature_names:
            raise ModelArtifactError(
                f"{path}: the model expects features {self.card.feature_names}, "
                f"the service supplies {list(expected_features)}"
            )
        if expected_grid is not None:
            differ = _grid_differences(self.card.grid, expected_grid)
            if differ:
                raise ModelArtifactError(
                    f"{path}: the model was trained on another grid than the service's: "
                    + "; ".join(differ)
                )
        import keras

        import models.layers  # noqa: F401  (registers the variants' layers with Keras)

        try:
            self.model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # Keras reports a zip it cannot read as "File not found"
            raise ModelArtifactError(
                f"{path}: exists ({path.stat().st_size} bytes) but is not a loadable Keras model "
                f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]})"
            ) from None
        self.input_scaler = MinMax.from_dict(self.card.input_scaling)
        self.target_scaler = MinMax.from_dict(self.card.target_scaling)
        self._call = _compiled_call(self.model)

    def predict(self, tensor: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Forecast PM2.5 (ug/m3) on the card's grid from one day ``(24, rows, cols, F)`` or a
        batch of days; with a margin, on the wider window or on the grid (edges repeated)."""
        x = np.asarray(tensor, np.float32)
        single = x.ndim == 4
        if single:
            x = x[None]
        m = self.card.margin
        grid = (self.card.hours, self.card.grid["nrows"], self.card.grid["ncols"])
        expected = (grid[0], grid[1] + 2 * m, grid[2] + 2 * m, len(self.card.features))
        if m and x.shape[1:] == (*grid, expected[3]):
            x = pad_margin(x, m)
        if x.shape[1:] != expected:
            raise ModelArtifactError(
                f"{self.path}: input shape {x.shape[1:]} does not match the card's {expected}"
                + (f" (its grid and a margin of {m} cells)" if m else "")
            )
        y = np.asarray(self._call(self.input_scaler.transform(x)))[..., 0]
        out = self.target_scaler.inverse(y[..., None])[..., 0]
        return out[0] if single else out


def pad_margin(x: npt.NDArray[np.float32], margin: int) -> npt.NDArray[np.float32]:
    """Widen ``(days, hours, rows, cols, F)`` by ``margin`` cells on each side, repeating the
    edge values: the stand-in for a margin model's wider window where only the grid was read."""
    pad = ((0, 0), (0, 0), (margin, margin), (margin, margin), (0, 0))
    return np.pad(x, pad, mode="edge")


def _grid_differences(card_grid: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Each key on which two grid descriptions differ, as ``key: card X, service Y``."""
    return [
        f"{key}: card {card_grid.get(key)!r}, service {expected.get(key)!r}"
        for key in sorted(set(card_grid) | set(expected))
        if not _same(card_grid.get(key), expected.get(key))
    ]


def _same(a: Any, b: Any) -> bool:
    """Equal, with numbers compared to a relative 1e-9 (descriptions are computed floats)."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return bool(np.isclose(a, b, rtol=1e-9, atol=1e-6))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _compiled_call(model: Any) -> Any:
    """The fastest inference call the backend offers: a traced function on TensorFlow."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: fn(tf.convert_to_tensor(x)).numpy()
    if keras.backend.backend() == "jax":
        import jax

        jitted = jax.jit(lambda v, x: model.stateless_call(v[0], v[1], x, training=False)[0])
        state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )
        return lambda x: np.asarray(jitted(state, x))
    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))
