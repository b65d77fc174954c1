"""TCM scene-text detector (DBNet, PAN or FCENet head): configuration and model (the converter is `convert_tcm`)."""

from .configuration_tcm import TCM_PRESETS, TcmConfig
from .modeling_tcm import TcmForSceneTextDetection, TcmOutput, TcmPreTrainedModel

__all__ = ["TCM_PRESETS", "TcmConfig", "TcmForSceneTextDetection", "TcmOutput", "TcmPreTrainedModel"]
