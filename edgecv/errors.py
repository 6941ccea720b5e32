"""The exceptions edgecv raises for user errors: each says what was wrong and what to do."""

from __future__ import annotations


class EdgecvError(Exception):
    """Base class of every error caused by input, files or settings a user controls.

    The CLI prints the message without a traceback and exits with status 2.
    """


class InvalidImageError(EdgecvError, ValueError):
    """An image handed to a detector cannot be used (dtype, shape, size, unreadable file)."""


class BundleError(EdgecvError):
    """A bundle directory is missing, incomplete, tampered with or of an unknown schema."""


class ExportError(EdgecvError):
    """The exporter cannot turn the given source into a bundle with the given options."""


class SourceError(ExportError):
    """A source model cannot be loaded, or does not match the output spec it was given."""


class BackendUnavailableError(EdgecvError):
    """The backend a bundle or target needs is not installed or cannot run here."""


class CudaError(BackendUnavailableError):
    """A CUDA runtime call failed: no driver or device, or the GPU refused (out of memory). While
    a batch runs, the TensorRT backend raises it as the cause of an :class:`InferenceError`."""


class InferenceError(EdgecvError):
    """The backend failed while running a batch; its own message is attached (``__cause__``)."""


class UnknownTargetError(EdgecvError, KeyError):
    """A target or backend name is not one of edgecv's keys."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0]) if self.args else ""
