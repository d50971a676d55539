"""One error type for bad input, raised before any compute and printed as one line."""


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the key and what is allowed."""


class NonFiniteError(RuntimeError):
    """Generation produced NaN/inf latents: the run is failed, nothing from it is scored."""
