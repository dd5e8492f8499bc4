"""Things that turn prompts into clips: the built-in U-ViT, folder and diffusers adapters."""
