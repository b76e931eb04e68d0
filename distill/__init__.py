"""distill: reasoning distillation core (data -> LoRA SFT with KL -> base-vs-SFT evaluation)."""

__version__ = "0.1.0"
