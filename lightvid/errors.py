"""User-facing errors.

A `LightvidError` carries a one-line message that names what was wrong and what is accepted.
The CLI prints it (no traceback) and exits with code 2; library callers can catch it.
"""


class LightvidError(ValueError):
    """Bad input or an unusable file: the message is shown to the user as is."""
