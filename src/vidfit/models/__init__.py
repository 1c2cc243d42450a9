"""Video models that take uint8 video and normalize it on their device.

Classifiers over torchvision video backbones (with their Kinetics-400 weights or none), 3D ResNet-34/50 and
a tiny CPU one, fusing camera views early or late, from RGB, keypoints or both; and ESPCN for video
super-resolution."""

from vidfit.models._backbone_recipes import build_backbone
from vidfit.models._backbones import BACKBONES
from vidfit.models._classifier import ClassifierOutput, VideoClassifier, build_classifier
from vidfit.models._espcn import ESPCN, build_espcn
from vidfit.models._pretrained import PretrainedWeightsUnavailableError

__all__ = [
    "BACKBONES",
    "ESPCN",
    "ClassifierOutput",
    "PretrainedWeightsUnavailableError",
    "VideoClassifier",
    "build_backbone",
    "build_classifier",
    "build_espcn",
]
