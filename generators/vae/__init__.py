"""A second generator family: a small conditional convolutional video VAE trained on the world.

It exists so that synthetic-video detectors can be evaluated leave-one-generator-out against a
model that shares nothing with the U-ViT diffusion model but the training data and the BPE
tokenizer. Generation samples the latent from the prior N(0, I) and decodes it in one pass.

configs.py   VAEConfig, presets (tiny, small)
model.py     ConditionalVideoVAE: prompt encoder, 3-D conv encoder -> latent, FiLM-conditioned decoder
train.py     AdamW with KL warm-up; the loop, exact resume and MLflow run are generators.training
generate.py  VAEGenerator (`vae:small`, `vae:PATH`) over generators.family.OnePassGenerator

This package must never import evalkit.metrics or evalkit.provenance.
"""

from .configs import PRESETS, VAEConfig, get_config
from .model import ConditionalVideoVAE, vae_loss

__all__ = ["PRESETS", "ConditionalVideoVAE", "VAEConfig", "get_config", "vae_loss"]
