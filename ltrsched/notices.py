"""A command's warnings and notes on stderr: held while its input may still prove bad (:class:`Notices`), printed
once its work starts (:func:`work_starts`) or it has run.

The CLI holds the ``warning:``/``note:`` lines a command prints on stderr until it has run, so that bad input found
late still gets its one-line error alone; the warnings that explain that error (:func:`explain_error`: what a file's
reading left out, ahead of "has only 1") go with it, and print ahead of its line. A long command calls
:func:`work_starts` once its input is read and checked and its work begins (engine runs, training, a sweep's runs,
labelling): from there they print as they come.
"""

from __future__ import annotations

import sys


def work_starts() -> None:
    """The command's input is checked and its long work begins: print the notices held so far, and later ones at
    once. Nothing outside the CLI (stderr not a :class:`Notices`)."""
    begin = getattr(sys.stderr, "work_starts", None)
    if begin is not None:
        begin()


def explain_error(lines) -> None:
    """``lines`` (``warning:``/``note:`` lines, each with its line break or without) explain the
    :class:`~ltrsched.errors.UserError` being handled, about to be raised again (call it in the ``except`` block):
    collected while a file was read (rows left out, first turns the paper's rules leave out), they were dropped with
    the error's one line, which then said "has only 1" without why. Under the CLI (:class:`Notices`) they go with that
    exception (:func:`explanations`): the CLI prints them ahead of its error line, or of the line of an error raised
    while it was handled ("sweep.toml: ... has only 1"), once each; a caller that handles it and goes on drops them with
    it (held by the stream instead, they printed ahead of the next error line, however unrelated). Elsewhere they
    print now (and, under the CLI, outside an ``except`` block, as the other notices)."""
    lines = [line if line.endswith("\n") else line + "\n" for line in lines]
    exc = sys.exception()
    if exc is not None and getattr(sys.stderr, "explain_error", None) is not None:
        vars(exc).setdefault(_EXPLAINED, []).extend(lines)
    elif lines:
        sys.stderr.write("".join(lines))


#: The attribute of an exception under which :func:`explain_error` keeps the lines explaining it.
_EXPLAINED = "_ltrsched_explained"


def explanations(exc: BaseException) -> list[str]:
    """The lines explaining ``exc`` (:func:`explain_error`), and the errors it was raised while handling (its
    context, which it may name: "sweep.toml: ... has only 1"), the first raised first."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return [line for e in reversed(chain) for line in vars(e).get(_EXPLAINED, ())]


#: How the lines begin that a command's warnings and notes print on stderr (:class:`Notices`).
NOTICE_PREFIXES = ("warning: ", "note: ")
#: How the CLI's line for bad input begins (:func:`ltrsched.cli.main`): :func:`explain_error`'s lines go ahead of it.
ERROR_PREFIX = "error: "


class Notices:
    """``sys.stderr`` as :func:`ltrsched.cli.main` runs a command: a warning or note line (:data:`NOTICE_PREFIXES`: a workload's
    rows left out, arrival times that look like milliseconds, burst arrivals setting a trace's times aside) is
    held, each distinct line once, everything else (progress bars, tracebacks) passes at once. :meth:`release`
    prints what is held, when the command has run; :meth:`drop` forgets it, when the command's input was bad: its
    one-line error is then the one line printed (a load warning printed ahead of a later error made it two lines,
    and a sweep that loaded a workload once per seed printed its warning once per seed). A sweep's worker processes
    hold theirs too, and return them to the main process (:func:`ltrsched.experiments.runner.run_one_noting`).
    Once a long command's input is read and checked and its work begins (engine runs, training, a sweep's runs:
    :func:`ltrsched.notices.work_starts`), what is held is printed and later notices print as they come (once each):
    a validation's "resuming" note, a retried worker's warning, are news while it runs, not after."""

    def __init__(self, stream):
        self.stream = stream
        self.held: list[str] = []
        self._seen: set[str] = set()
        self._start = ""  # the start of a line that is, or may become, a notice: held until its line break
        self._mid_line = False  # the last text passed on ended inside a line (a notice starts a line)
        self.holding = True  # False once the command's work began: notices pass (each once)
        self.explaining: list[str] = []  # lines that explain the next error line (explain_error)

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # (click's test for a binary stream writes b"")
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        rest, self._start, passed = self._start + text, "", []
        while rest:
            cut = rest.find("\n") + 1
            line, rest = (rest[:cut], rest[cut:]) if cut else (rest, "")
            if self._mid_line or not (line.startswith(NOTICE_PREFIXES)
                                      or (not cut and any(p.startswith(line) for p in NOTICE_PREFIXES))):
                if not self._mid_line and line.startswith(ERROR_PREFIX) and self.explaining:
                    passed.extend(self._explanations())
                passed.append(line)
                self._mid_line = not cut
            elif not cut:  # a notice (or what may become one) without its line break yet
                self._start = line
            elif line not in self._seen:
                self._seen.add(line)
                (self.held if self.holding else passed).append(line)
        if passed:
            self.stream.write("".join(passed))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def release(self) -> None:
        """Print the held notices (and a notice's start still without its line break); lines explaining an error that
        never came (it was handled) are forgotten."""
        text, self.held, self._start, self.explaining = "".join(self.held) + self._start, [], "", []
        if text:
            self.stream.write(text)
            self.stream.flush()

    def work_starts(self) -> None:
        """Print what is held, and pass later notices at once (each distinct line once)."""
        self.release()
        self.holding = False

    def explain_error(self, lines: list[str]) -> None:
        """Hold ``lines`` to print ahead of the next ``error:`` line: the CLI's, of the exception they explain
        (:func:`ltrsched.notices.explanations`), which it prints next."""
        self.explaining.extend(line for line in lines if line not in self.explaining)

    def _explanations(self) -> list[str]:
        """The lines explaining an error now printed: those not printed yet (a held one leaves the hold)."""
        lines, self.explaining = self.explaining, []
        fresh = [line for line in lines if line not in self._seen or line in self.held]
        self.held = [line for line in self.held if line not in fresh]
        self._seen.update(fresh)
        return fresh

    def drop(self) -> None:
        """Forget the held notices."""
        self.held, self._start, self.explaining = [], "", []

    def __getattr__(self, name: str):
        if name == "buffer":  # (click writes to a text stream's buffer where it doubts its encoding: past the hold)
            raise AttributeError(name)
        return getattr(self.stream, name)
