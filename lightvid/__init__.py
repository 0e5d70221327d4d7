"""lightvid: fast video diffusion on small hardware."""
__version__ = "0.1.0"
