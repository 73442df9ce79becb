"""Pretrained networks and their loaders: BigGAN-deep generators and VGG16 perceptual features."""
