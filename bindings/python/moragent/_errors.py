"""The exceptions the package raises: one class per ``moragent_status`` failure code."""

from __future__ import annotations

from . import _lib


class MoRAgentError(Exception):
    """A libmoragent call failed. ``status`` is the C status code, ``message`` the text of
    ``moragent_last_error()`` (it names the C function and the problem)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def __reduce__(self):
        return (type(self), (self.status, self.message))


class InvalidArgumentError(MoRAgentError, ValueError):
    """MORAGENT_ERROR_INVALID_ARGUMENT: a value the call does not accept."""


class InvalidHandleError(MoRAgentError):
    """MORAGENT_ERROR_INVALID_HANDLE: the object was closed (or the handle is not live)."""


class ModelIOError(MoRAgentError):
    """MORAGENT_ERROR_IO: a file or folder could not be opened or read."""


class MalformedFileError(MoRAgentError):
    """MORAGENT_ERROR_MALFORMED_FILE: a file was read but its content is wrong."""


class UnsupportedError(MoRAgentError):
    """MORAGENT_ERROR_UNSUPPORTED: a model, tokenizer or option the library does not implement."""


class BufferTooSmallError(MoRAgentError):
    """MORAGENT_ERROR_BUFFER_TOO_SMALL (the package retries with a larger buffer; seen only
    through the raw layer)."""


class AbortedError(MoRAgentError):
    """MORAGENT_ERROR_ABORTED: the progress callback asked to stop."""


class InternalError(MoRAgentError):
    """MORAGENT_ERROR_INTERNAL: a failure no input explains."""


class CallbackError(MoRAgentError):
    """MORAGENT_ERROR_CALLBACK: a router callback or a plugin function failed or wrote a bad
    weight (a NaN, a negative). When the callback is a Python function that raised, the package
    re-raises that exception instead."""


class BusyError(MoRAgentError):
    """MORAGENT_ERROR_BUSY: the policy is in use by another call (one call at a time)."""


_BY_STATUS = {
    _lib.MORAGENT_ERROR_INVALID_ARGUMENT: InvalidArgumentError,
    _lib.MORAGENT_ERROR_INVALID_HANDLE: InvalidHandleError,
    _lib.MORAGENT_ERROR_IO: ModelIOError,
    _lib.MORAGENT_ERROR_MALFORMED_FILE: MalformedFileError,
    _lib.MORAGENT_ERROR_UNSUPPORTED: UnsupportedError,
    _lib.MORAGENT_ERROR_BUFFER_TOO_SMALL: BufferTooSmallError,
    _lib.MORAGENT_ERROR_ABORTED: AbortedError,
    _lib.MORAGENT_ERROR_INTERNAL: InternalError,
    _lib.MORAGENT_ERROR_CALLBACK: CallbackError,
    _lib.MORAGENT_ERROR_BUSY: BusyError,
}


def error_for(status: int, message: str) -> MoRAgentError:
    """The exception for a failure status (``MoRAgentError`` itself for a code this version
    does not know: the header allows new negative codes)."""
    return _BY_STATUS.get(status, MoRAgentError)(status, message)


def check(status: int) -> None:
    """Raises the exception for ``status`` with the thread's last error message, unless OK."""
    if status != _lib.MORAGENT_OK:
        raise error_for(status, _lib.moragent_last_error().decode("utf-8", "replace"))


def invalid_argument(message: str) -> InvalidArgumentError:
    """An InvalidArgumentError raised by the Python layer itself, for values ctypes would
    otherwise wrap silently (a negative size, an id beyond 32 bits)."""
    return InvalidArgumentError(_lib.MORAGENT_ERROR_INVALID_ARGUMENT, message)
