"""instcolor: instance-aware colorization of grayscale photographs and film."""

__version__ = "0.1.0"
