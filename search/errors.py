"""The service's exceptions.

SearchError                 base: anything the service raises on purpose
 +-- InputError             the user's input is wrong; CLI exit code 2, nothing written
 |    +-- SpaceError        a space file: names the file, the key and the line
 |    +-- DataError         a data source: names the space file, the data key and the column
 +-- TrialFailed            one trial failed (NaN loss, ...); the study goes on
 +-- SearchFailed           the search as a whole could not run; CLI exit code 1
"""

from __future__ import annotations


class SearchError(Exception):
    """Base class of every error the service raises on purpose."""


class InputError(SearchError):
    """Bad input from the user: reported in one line, exit code 2, nothing written."""


class _Located(InputError):
    """An input error that names where it is: `file:line: key: reason`."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file, self.key, self.line, self.reason = file, key, line, message
        if file is None and key is None and line is None:
            super().__init__(message)
            return
        where = file or "<space>"
        if line is not None:
            where += f":{line}"
        if key:
            where += f": {key}"
        super().__init__(f"{where}: {message}")

    def at_line(self, line: int | None) -> _Located:
        """The same error with the line of its key filled in."""
        if line is None or self.line is not None:
            return self
        return type(self)(self.reason, file=self.file, key=self.key, line=line)


class SpaceError(_Located):
    """A space file is malformed or asks for something impossible."""


class DataError(_Located):
    """A data source is missing, unreadable or unfit for the task."""


class TrialFailed(SearchError):
    """One trial could not produce a score; it is recorded as failed with this reason."""


class SearchFailed(SearchError):
    """The search could not run at all (storage unreachable, every trial failed, ...)."""
