"""What the layers compute (Part I): activations, first-layer filters, embeddings, neighbours,
PCA/t-SNE, receptive fields and maximally activating patches.

One module per chapter, all re-exported here so a notebook writes ``features.activations(...)``.
"""
from .activations import activations, filter_responses, first_conv
from .embedding import embed, nearest_neighbours, neighbour_agreement, pca, tsne
from .patches import (RF, ReceptiveFieldError, TopActivations, crop_patches, effective_receptive_field,
                      max_activating_patches, receptive_field, top_activations)

__all__ = ["activations", "first_conv", "filter_responses"]
__all__ += ["embed", "nearest_neighbours", "neighbour_agreement", "pca", "tsne"]
__all__ += ["RF", "ReceptiveFieldError", "receptive_field", "TopActivations", "top_activations",
            "crop_patches", "max_activating_patches", "effective_receptive_field"]
