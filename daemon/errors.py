"""What the user can fix: the one base class for errors the `proctord` command reports on one line.

A bad config, a missing model or video, a pin this board lacks, an unreadable credential: each is a
`UserError` whose message names the key or file and what to do, and the command exits EXIT_BAD_INPUT
without a traceback. Any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2  # a bad config, a missing model, a video that cannot be read, a bad argument


class UserError(Exception):
    """An error whose message tells the user what to do; no traceback."""
