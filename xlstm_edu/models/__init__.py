"""Language models (top layer: built on :mod:`xlstm_edu.blocks`).

* :mod:`~xlstm_edu.models.base`: what they share (:class:`~base.LanguageModel`: token checks,
  ``generate``, sizes, configs as dicts) and the sampler :func:`sample_next_token`;
* :class:`xLSTMLM` / :class:`xLSTMLMConfig`: embedding -> xLSTM block stack -> tied head;
* baselines with the same interface in :mod:`xlstm_edu.models.baselines`: ``LSTMLM`` and
  ``TransformerLM``;
* :func:`~xlstm_edu.models.sizing.match_parameters`: the width for a target parameter count;
* :class:`~xlstm_edu.models.classifier.TokenClassifier`: any of them with a class head at every
  position (:func:`build_classifier`);
* :func:`build_model`: one entry point that picks the model from a config's ``"model"`` field.
"""

from __future__ import annotations

import dataclasses
import importlib

from .base import LanguageModel, count_parameters, sample_next_token
from .classifier import TokenClassifier, build_classifier
from .forecaster import Forecaster, ForecasterConfig  # chapter 11: values in, H values out
from .sizing import match_parameters
from .xlstm_lm import xLSTMLM, xLSTMLMConfig

#: model name -> (module, config class, model class); modules are imported when first used, so
#: this file works whether or not the optional ones exist.
MODELS = {
    "xlstm": ("xlstm_edu.models.xlstm_lm", "xLSTMLMConfig", "xLSTMLM"),
    "lstm": ("xlstm_edu.models.baselines", "LSTMLMConfig", "LSTMLM"),
    "transformer": ("xlstm_edu.models.baselines", "TransformerLMConfig", "TransformerLM"),
    "minrnn": ("xlstm_edu.models.minrnn_lm", "MinRNNLMConfig", "MinRNNLM"),
}

__all__ = ["LanguageModel", "TokenClassifier", "build_classifier",
           "xLSTMLM", "xLSTMLMConfig", "sample_next_token", "build_model", "MODELS",
           "count_parameters", "match_parameters", "Forecaster", "ForecasterConfig"]


def _classes(name: str):
    module_name, config_name, model_name = MODELS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ImportError(f"model {name!r} needs {module_name}, which is not available: {err}") from err
    return getattr(module, config_name), getattr(module, model_name)


def build_model(config):
    """Build a model from a config dataclass or a dict with a ``"model"`` field.

    ``build_model({"model": "xlstm", "embedding_dim": 64, ...})``; the other keys are the fields of
    that model's config (``"model"`` is one of :data:`MODELS`). A config dataclass builds its own model.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        for name, (_, config_name, _) in MODELS.items():
            if type(config).__name__ == config_name:
                config_cls, model_cls = _classes(name)
                if isinstance(config, config_cls):
                    return model_cls(config)
        raise ValueError(f"no model for config type {type(config).__name__}")
    if not isinstance(config, dict):
        raise ValueError(f"config must be a config dataclass or a dict, got {type(config).__name__}")
    fields = dict(config)
    name = fields.pop("model", None)
    if name not in MODELS:
        raise ValueError(f'config dict needs a "model" field, one of {sorted(MODELS)}; got {name!r}')
    config_cls, model_cls = _classes(name)
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} fields: {unknown}")
    return model_cls(config_cls(**fields))
