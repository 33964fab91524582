"""What the network wants: images made by optimisation against a frozen model (Parts III and IV).

``core`` holds the one loop (parameterisations, objectives, transforms, optimisers) that the
chapter modules build on.
"""
from .core import (FourierImage, Jitter, NormalizedStep, Objective, Optimized, PixelImage, RandomAffine,
                   activation, activations, channel, class_score, layer_energy, optimize, photo_colour_sqrt,
                   total_variation)

from . import class_models
from .class_models import class_model, neuron_model

__all__ = ["FourierImage", "Jitter", "NormalizedStep", "Objective", "Optimized", "PixelImage", "RandomAffine",
           "activation", "activations", "channel", "class_score", "layer_energy", "optimize", "photo_colour_sqrt",
           "total_variation"]
__all__ += ["class_models", "class_model", "neuron_model"]

from .texture import LAYER_SETS, TEXTURE_LAYERS, gram, gram_targets, synthesize_texture, texture_loss, texture_objective

__all__ += ["LAYER_SETS", "TEXTURE_LAYERS", "gram", "gram_targets", "synthesize_texture", "texture_loss",
            "texture_objective"]

from .dream import Dream, Octave, deepdream, guided_objective, octave_sizes

__all__ += ["Dream", "Octave", "deepdream", "guided_objective", "octave_sizes"]

from .adversarial import (Attack, AttackTargetError, EpsBall, adversarial_objective, attack_table,
                          correctly_classified, fgsm, fgsm_direction, fooling_images, iterative_fgsm, least_likely,
                          next_class, targeted_ascent)

__all__ += ["Attack", "AttackTargetError", "EpsBall", "adversarial_objective", "attack_table", "correctly_classified",
            "fgsm", "fgsm_direction", "fooling_images", "iterative_fgsm", "least_likely", "next_class",
            "targeted_ascent"]

from .style import CONTENT_LAYER, content_loss, match_colours, style_transfer, style_transfer_objective, transfer_losses

__all__ += ["CONTENT_LAYER", "content_loss", "match_colours", "style_transfer", "style_transfer_objective",
            "transfer_losses"]

from .inversion import InversionErrors, alpha_norm, feature_error, feature_target, invert, inversion_errors

__all__ += ["InversionErrors", "alpha_norm", "feature_error", "feature_target", "invert", "inversion_errors"]
