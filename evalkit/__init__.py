"""evalkit: evaluation, safety and synthetic-media detection for text-to-video models."""

from evalkit import interrupts as _interrupts

if _interrupts.started_as_command():  # first thing: a Ctrl-C or `kill` while starting is exit 130 too
    _interrupts.install()

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("evalkit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
