"""Video models that take uint8 video and normalize it on their device.

Classifiers over torchvision video backbones (with their Kinetics-400 weights or none), 3D ResNet-34/50 and
a tiny CPU one, the encoders of Hugging Face video transformers (``hf:<model id or folder>``: full, frozen,
LoRA or token-dropping fine-tuning), fusing camera views early or late, from RGB, keypoints or both; and ESPCN
for video super-resolution."""

from vidfit.models._backbone_recipes import backbone_constraints, build_backbone
from vidfit.models._backbones import BACKBONE_ALIASES, BACKBONES, InputConstraints
from vidfit.models._classifier import ClassifierOutput, VideoClassifier, build_classifier, classifier_problems
from vidfit.models._espcn import ESPCN, build_espcn
from vidfit.models._hf import HfModelUnavailableError, is_hf_backbone
from vidfit.models._lora import LoraSettings
from vidfit.models._pretrained import PretrainedWeightsUnavailableError, state_dict_problems

__all__ = [
    "BACKBONES",
    "BACKBONE_ALIASES",
    "ESPCN",
    "ClassifierOutput",
    "HfModelUnavailableError",
    "InputConstraints",
    "LoraSettings",
    "PretrainedWeightsUnavailableError",
    "VideoClassifier",
    "backbone_constraints",
    "build_backbone",
    "build_classifier",
    "build_espcn",
    "classifier_problems",
    "is_hf_backbone",
    "state_dict_problems",
]
