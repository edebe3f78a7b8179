"""Exceptions: one class per qyolo StatusCode, with the message the CLI prints.

Each also derives from the nearest builtin: InvalidArgumentError is a ValueError, NotFoundError a
FileNotFoundError, IoError an OSError, UnsupportedError a NotImplementedError.
"""

from _qyolo import (QyoloError, InvalidArgumentError, NotFoundError, CorruptError, UnsupportedError,
                    VersionMismatchError, IoError, InternalError, DeviceError)

__all__ = ["QyoloError", "InvalidArgumentError", "NotFoundError", "CorruptError", "UnsupportedError",
           "VersionMismatchError", "IoError", "InternalError", "DeviceError"]
