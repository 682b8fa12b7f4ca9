"""The model engine tests run on: the bundled demo model, a real trained model that needs no torch."""

from __future__ import annotations

from engine.library import DEMO_MODEL
from engine.models.hub import local_model_folder
from engine.models.registry import Registry
from engine.settings import Settings

MODEL_KEY = DEMO_MODEL


def install_test_model(settings: Settings) -> None:
    """Check the bundled demo model is present (it ships in resources/demo)."""
    spec = Registry.load().get(MODEL_KEY)
    folder = local_model_folder(spec, settings)
    assert folder is not None, "the bundled demo model (resources/demo) is missing"
