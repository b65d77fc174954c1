from .configuration_clip4str import CHARSET_36, CHARSET_94, PRESETS, Clip4StrConfig
from .modeling_clip4str import (
    Clip4StrDecodingOptions,
    Clip4StrForSceneTextRecognition,
    Clip4StrOutput,
    Clip4StrPreTrainedModel,
)

__all__ = [
    "CHARSET_36",
    "CHARSET_94",
    "PRESETS",
    "Clip4StrConfig",
    "Clip4StrDecodingOptions",
    "Clip4StrForSceneTextRecognition",
    "Clip4StrOutput",
    "Clip4StrPreTrainedModel",
]
