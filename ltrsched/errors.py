"""Errors that the CLI reports as one line with exit code 2."""


def first_repeat(values):
    """The first item of ``values`` that an earlier one equals (None if each is given once): for the one-line
    errors about an option or list item given twice. Linear time for hashable items (comparing each with
    every earlier one took 7 s for a sweep file listing 20,000 seeds, and grew with the square)."""
    seen: set = set()
    for i, v in enumerate(values):
        try:
            if v in seen:
                return v
            seen.add(v)
        except TypeError:  # an unhashable item: compared with every earlier one
            if v in values[:i]:
                return v
    return None


def list_items(text: str, sep: str, option: str) -> list[str]:
    """The items of a list option's value ``text`` (``--rates 1,2``, ``--policies 'fcfs;ltr'``), split at ``sep``
    and stripped; [] if every item is empty (the caller says, in its words, that no item was given). One-line
    :class:`UserError` naming ``option`` for an empty item beside given ones (``1,,2``, ``fcfs;;ltr``, a trailing
    ``,``): it was skipped silently, so a value lost between two separators (a shell variable that expanded to
    nothing, a deleted item) went unnoticed and the run had one case fewer than written."""
    items = [item.strip() for item in text.split(sep)]
    if not any(items):
        return []
    if not all(items):
        at = items.index("")
        raise UserError(f"{option} {text!r}: item {at + 1} of {len(items)} is empty (two {sep!r} in a row, or one at "
                        f"an end); remove the extra {sep!r} or give the missing item")
    return items


class UserError(Exception):
    """Bad input from the user (file, option, name). The CLI prints ``error: <message>`` and exits 2."""


class ArgumentTypeError(UserError, TypeError):
    """An argument of the wrong type (an epoch count given as text), from a Python entry point whose check the CLI
    shares: a :class:`TypeError` to a Python caller (``except TypeError``), one line with exit code 2 on the
    command line (a :class:`UserError`)."""


class ArgumentValueError(UserError, ValueError):
    """An argument of the right type but a value that cannot work (0 epochs, an unknown kind, one training prompt),
    from a Python entry point whose check the CLI shares: a :class:`ValueError` to a Python caller, one line with
    exit code 2 on the command line (a :class:`UserError`)."""


class PathNotFoundError(UserError, FileNotFoundError):
    """A path a Python entry point was given that does not exist (a checkpoint directory to load): a
    :class:`FileNotFoundError` to a Python caller (``except FileNotFoundError``, ``except OSError``), one line with
    exit code 2 on the command line (a :class:`UserError`)."""


class WriteFailedError(UserError, OSError):
    """A file or directory that could not be written or removed (disk full, no permission, a file size limit): an
    :class:`OSError` to a Python caller, its ``errno`` the failed call's where known (None otherwise), one line with
    exit code 2 on the command line (a :class:`UserError`). ``str()`` is the message alone."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno  # (set after: OSError(errno, message) would print "[Errno 28] ..." before the line)

    def __reduce__(self):  # picklable with its errno, so that a sweep worker's failed write reaches the main process whole
        return type(self), (str(self), self.errno)


class MissingDependencyError(UserError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str):
        super().__init__(f"{package} is not installed; install it with: pip install 'ltrsched[{extra}]'")
        self.package = package
        self.extra = extra

    def __reduce__(self):  # picklable, so that a sweep worker can report it to the main process
        return type(self), (self.package, self.extra)


class RunFailedError(Exception):
    """Runs that could not be computed although their input is fine: their worker process died twice
    (killed, out of memory, a crash in native code). The other runs' results are saved; the CLI prints
    ``error: <message>`` as one line and exits 1."""
