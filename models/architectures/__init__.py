"""Architectures: ``create_model(name, num_classes, in_channels, image_size)``, ``list_models()``.

Importing this package registers every architecture module beside it.
"""

from models.architectures import mobilenet, resnet, tinycnn, vgg  # noqa: F401  (registration)
from models.architectures.normalize import Classifier, Normalize
from models.architectures.registry import (
    ARCHITECTURES,
    create_model,
    list_models,
    register_model,
)

__all__ = ["ARCHITECTURES", "Classifier", "Normalize", "create_model", "list_models",
           "register_model"]
