"""Errors users see. Each carries the CLI exit code it maps to; none prints a traceback."""

from __future__ import annotations

from skyplan.models import SourcePos

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INFEASIBLE = 3
EXIT_GAVE_UP = 4


class SkyplanError(Exception):
    """Base class: a message for the user and the exit code."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SpecError(SkyplanError):
    """Invalid spec: names the file, the line and the key, and says what was expected."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, pos: SourcePos, message: str):
        super().__init__(f"{pos}: {message}")
        self.pos = pos
        self.detail = message


class CatalogError(SkyplanError):
    exit_code = EXIT_BAD_INPUT


class InfeasibleError(SkyplanError):
    """No placement satisfies the constraints; `reasons` name the conflicting constraint groups."""

    exit_code = EXIT_INFEASIBLE

    def __init__(self, message: str, reasons: tuple[str, ...] = ()):
        super().__init__(message)
        self.reasons = reasons


class RenderError(SkyplanError):
    """The plan cannot be written as valid files (e.g. a task's script exceeds a user-data limit)."""

    exit_code = EXIT_BAD_INPUT


class ApplyError(SkyplanError):
    exit_code = EXIT_TASK_FAILED


class GaveUpError(SkyplanError):
    exit_code = EXIT_GAVE_UP
