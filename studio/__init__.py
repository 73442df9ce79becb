"""ArtGAN Studio: make art with GANs from small datasets (BSA fine-tuning, class-conditional GANs, CLIP blending)."""

__version__ = "0.1.0"
