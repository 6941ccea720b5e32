"""The exceptions edgecv raises for user errors: each says what was wrong and what to do."""

from __future__ import annotations


class EdgecvError(Exception):
    """Base class of every error caused by input, files or settings a user controls.

    The CLI prints the message without a traceback and exits with the class's
    :attr:`exit_code`: 2 for a user error, 1 for a gate that could not be met, 3 for a
    latency measurement too noisy to decide.
    """

    exit_code: int = 2


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


class PlanError(BackendUnavailableError):
    """A TensorRT plan cannot be used here: none fits this GPU and TensorRT (and building was
    not asked for), TensorRT refused it, or it does not match the bundle's manifest. Rebuild it
    on the device with ``edgecv build BUNDLE``."""


class InferenceError(EdgecvError):
    """The backend failed while running a batch; its own message is attached (``__cause__``)."""


class UnknownTargetError(EdgecvError, KeyError):
    """A target or backend name is not one of edgecv's keys."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0]) if self.args else ""


class DatasetError(EdgecvError):
    """A data set (validation, calibration) cannot be read: missing files, an unknown format,
    annotations that do not fit its images or the model's classes."""


class VideoError(EdgecvError):
    """A video source or sink cannot be used: a file that does not open or decode (damaged, a
    missing codec), a camera that does not exist, a stream that refuses or stays down after its
    retries, an output file that cannot be written."""


class AccuracyBudgetError(EdgecvError):
    """The quantized model could not be brought within the accuracy budget (CLI exit status 1)."""

    exit_code = 1

    def __init__(self, message: str, history: list[dict] | None = None) -> None:
        super().__init__(message)
        self.history = history or []


class BaselineError(EdgecvError):
    """A latency baseline is missing, unreadable, of another schema, or refused as too noisy."""


class BaselineMissing(BaselineError):
    """No baseline file where one was expected, and writing one was not asked for."""


class NoisyBaseline(BaselineError):
    """A baseline was not written: the machine was too noisy to record one worth judging against
    (CLI exit status 3, as an inconclusive gate)."""

    exit_code = 3
