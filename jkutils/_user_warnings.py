"""Warnings that point at the user's line, not at the jkutils line that raised them."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

_SKIPPED = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,  # jkutils itself
    # @contextmanager frames between jkutils frames. The extension is left out because
    # skip_file_prefixes compares a prefix with the file name minus its last character.
    os.path.splitext(os.path.abspath(contextlib.__file__))[0],
)


def warn_user(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first calling frame outside jkutils.

    On Python 3.12+ this is ``skip_file_prefixes``; on 3.11 the stack level is counted.

    Example:
        >>> warn_user("Skipping archive member 'x'", UserWarning)  # doctest: +SKIP
    """
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=_SKIPPED)
        return
    depth, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_SKIPPED):
        depth, frame = depth + 1, frame.f_back
    warnings.warn(message, category, stacklevel=depth + 1)
