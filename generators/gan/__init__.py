"""A third generator family: a small conditional video GAN trained on the world.

It exists so that synthetic-video detectors can be evaluated leave-one-generator-family-out
against a model trained adversarially (no reconstruction or denoising loss) that shares nothing
with the U-ViT diffusion model or the VAE but the training data, the BPE tokenizer and the
prompt-encoder design. Generation draws z ~ N(0, I) and runs the EMA generator once.

configs.py   GANConfig, presets (tiny, small)
model.py     ConditionalVideoGAN: FiLM-conditioned 3-D transposed-conv generator (+ EMA), spectral-norm
             3-D conv discriminator with projection conditioning, hinge losses
train.py     Adam(0, 0.99), hinge loss, EMA, exact resume, MLflow run; `python -m generators.gan.train`
             or `evalkit generator train --preset gan-small`
generate.py  GANGenerator (`gan:small`, `gan:PATH`) over generators.family.OnePassGenerator

This package must never import evalkit.metrics or evalkit.provenance.
"""

from .configs import PRESETS, GANConfig, get_config
from .model import ConditionalVideoGAN, d_hinge_loss, g_hinge_loss

__all__ = ["PRESETS", "ConditionalVideoGAN", "GANConfig", "d_hinge_loss", "g_hinge_loss", "get_config"]
