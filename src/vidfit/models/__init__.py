"""Video models that take uint8 video and normalize it on their device.

Classifiers over torchvision video backbones (with their Kinetics-400 weights or none), 3D ResNet-34/50 and
a tiny CPU one, fusing camera views early or late, from RGB, keypoints or both; and ESPCN for video
super-resolution.
"""

from vidfit.models._backbone_recipes import backbone_constraints, build_backbone
from vidfit.models._backbones import BACKBONE_ALIASES, BACKBONES, InputConstraints, VideoBackbone
from vidfit.models._branches import KeypointEncoder
from vidfit.models._classifier import (
    ClassifierOutput,
    ClassifierSpec,
    VideoClassifier,
    build_classifier,
    classifier_problems,
)
from vidfit.models._espcn import ESPCN, build_espcn
from vidfit.models._pretrained import PRETRAINED_WEIGHTS, PretrainedWeightsUnavailableError

__all__ = [
    "BACKBONES",
    "BACKBONE_ALIASES",
    "ESPCN",
    "PRETRAINED_WEIGHTS",
    "ClassifierOutput",
    "ClassifierSpec",
    "InputConstraints",
    "KeypointEncoder",
    "PretrainedWeightsUnavailableError",
    "VideoBackbone",
    "VideoClassifier",
    "backbone_constraints",
    "build_backbone",
    "build_classifier",
    "build_espcn",
    "classifier_problems",
]
