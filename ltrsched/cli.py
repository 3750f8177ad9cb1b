"""The ``ltrsched`` command line. Sub-commands live beside the code they drive and load lazily, so
``ltrsched --help`` stays fast and works without optional dependencies (torch, vLLM)."""

from __future__ import annotations

import contextlib
import errno
import importlib
import sys

import click

from ltrsched import __version__
from ltrsched.errors import RunFailedError, UserError, first_repeat
from ltrsched.names import one_line
from ltrsched.notices import Notices, explanations
from ltrsched.numbers import plain_number_text
from ltrsched.plots.glyphs import missing_glyphs_noted

#: command name -> ("module:attribute" of its click command, one-line help for `ltrsched --help`).
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("ltrsched.sim.commands:simulate", "Simulate one policy serving one workload (one replica or a cluster)."),
    "profiles": ("ltrsched.sim.profiles.commands:profiles", "List step-time profiles."),
    "policies": ("ltrsched.policies.commands:policies", "List scheduling policies and their parameters."),
    "routers": ("ltrsched.routers.commands:routers", "List cluster routers and their parameters."),
    "plot": ("ltrsched.plots.commands:plot", "CDF plots of runs and sweeps; Perfetto traces of runs."),
    "workloads": ("ltrsched.workloads.commands:workloads", "List built-in workloads, or the length statistics of workload files."),
    "label": ("ltrsched.labelling.commands:label", "Serve a model and record its output lengths for ShareGPT's (or your) prompts: labels."),
    "train": ("ltrsched.predictors.commands:train", "Train an output-length predictor (pairwise / ListMLE / classes)."),
    "predict": ("ltrsched.predictors.commands:predict", "Add predictor scores to a workload file."),
    "evaluate": ("ltrsched.predictors.commands:evaluate", "Kendall tau / accuracy of a predictor."),
    "label-report": ("ltrsched.predictors.commands:label_report", "Held-out tau on a served model's labels: rankers, ceiling, learning curve."),
    "ensemble": ("ltrsched.predictors.commands:ensemble", "Combine rank predictors (z-scored scores, weighted)."),
    "reproduce": ("ltrsched.experiments.commands:reproduce", "The paper's tables and figures, simulated, beside the paper's."),
    "real-model-results": ("ltrsched.experiments.real_model_collect:real_model_results",
                           "Gather real-model validate runs, a label report and a ranker for reproduce's real-engine section."),
    "sweep": ("ltrsched.experiments.commands:sweep", "Policies x workloads x rates x profiles from a TOML/JSON file."),
    "capacity": ("ltrsched.experiments.commands:capacity", "Highest Poisson rate per policy that meets given SLOs."),
    "replay": ("ltrsched.validation.commands:replay", "Serve a workload on real vLLM (CPU build or GPU) with a policy."),
    "profile": ("ltrsched.validation.commands:profile", "Measure the engine's step times (CPU or GPU) into a simulator profile."),
    "validate": ("ltrsched.validation.commands:validate", "Simulator vs real vLLM on the same workload and policies."),
}


def check_parameter_text(command: click.Command) -> click.Command:
    """``command`` (and its sub-commands) with every path parameter refusing an empty string, and every number
    parameter a number only by Python's own literal rules. click reads ``""`` as ``Path("")``, the current
    directory, so ``simulate -o ""`` (an unset shell variable) wrote its run into it, and ``plot cdf ""`` plotted
    whatever run lay there (a path of spaces alone, ``-o "$A $B"``, made a directory named ``' '``); it reads
    numbers with ``int()``/``float()``, so ``--rate 0_5`` (a typo for 0.5) ran at 5 req/s and ``-n ١٠``
    (Arabic-Indic digits) took 10 requests, where a policy spec refuses both."""
    for param in command.params:
        kind = param.type
        if getattr(kind, "_checked_text", False):
            continue
        if isinstance(kind, click.Path):
            def convert(value, param, ctx, _convert=kind.convert):
                if isinstance(value, str) and value == "":
                    raise click.BadParameter("an empty path; give a file or directory (. for the current one)",
                                             ctx=ctx, param=param)
                if isinstance(value, str) and not value.strip():  # (`-o "$A $B"`: a directory named ' ')
                    raise click.BadParameter(f"a blank path ({value!r}: spaces alone); give a file or directory",
                                             ctx=ctx, param=param)
                return _convert(value, param, ctx)
        elif isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
            def convert(value, param, ctx, _convert=kind.convert):
                if isinstance(value, str):  # (as policy specs' numbers)
                    try:
                        plain_number_text(value)
                    except ValueError as exc:
                        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
                return _convert(value, param, ctx)
        else:
            continue
        kind.convert = convert
        kind._checked_text = True
    for sub in getattr(command, "commands", {}).values():
        check_parameter_text(sub)
    return command


def refuse_repeated_options(command: click.Command) -> click.Command:
    """``command`` (and its sub-commands) refusing an option that takes one value (or a flag) given more than once.
    click keeps the last one silently, so ``simulate -P ltr:tau=0.6 ... -P fcfs`` (an option added at the end of a
    long command line, or a script's default beside the user's) ran FCFS alone and labelled its run so, and
    ``--chunked-prefill --no-chunked-prefill`` ran whichever came last. Options meant to repeat (``--slo``,
    capacity's ``-p``, ``--plugin``) keep their own checks of repeated values.

    The check reads the order in which click 8's parser met the options (``Command.make_parser(ctx).parse_args``,
    whose third result lists each option's parameter as it was given; pyproject pins click 8). On a click without
    them (a parser of another shape) it is left out, and options work as that click parses them: every command
    runs, as before the check (it said "command 'simulate' is unavailable" of every command)."""
    make_parser = getattr(command, "make_parser", None)
    if callable(make_parser) and not getattr(command, "_repeats_checked", False):
        def checked_parser(ctx: click.Context, _make_parser=make_parser):
            parser = _make_parser(ctx)
            parse_args = getattr(parser, "parse_args", None)
            if not callable(parse_args):  # (another click's parser: unchecked)
                return parser

            def checked_parse(args, _parse_args=parse_args):
                parsed = _parse_args(args)
                order = parsed[2] if isinstance(parsed, tuple) and len(parsed) == 3 else None
                if isinstance(order, list):
                    _refuse_repeats(order, ctx)
                return parsed

            parser.parse_args = checked_parse
            return parser

        command.make_parser = checked_parser
        command._repeats_checked = True
    for sub in getattr(command, "commands", {}).values():
        refuse_repeated_options(sub)
    return command


def _refuse_repeats(order: list, ctx: click.Context) -> None:
    """A one-line usage error if an option of ``order`` (the parameters in the order given) that takes one value or
    is a flag comes twice."""
    single = [p for p in order if isinstance(p, click.Option) and not p.multiple and not getattr(p, "count", False)
              and p.expose_value]  # (not --help)
    twice = first_repeat(single)
    if twice is not None:
        names = " / ".join(twice.opts + twice.secondary_opts)
        which = " (one of them)" if twice.secondary_opts else ""
        raise click.UsageError(f"{names} is given {_times(single.count(twice))}; give it once{which}", ctx=ctx)


def _times(count: int) -> str:
    """``count`` repeats in words: "twice", "3 times"."""
    return "twice" if count == 2 else f"{count:,} times"


class Interrupted(BaseException):
    """Ctrl-C during a command, past click: click answers a KeyboardInterrupt with a line break of its own ahead of
    its Abort, so the "aborted" that :func:`main` prints came as two lines (a blank one first, in a log or a pipe)."""


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        from ltrsched.plugin_scope import command_plugins

        try:
            with command_plugins():  # (called from Python, e.g. by click's CliRunner: no plugin outlives its command)
                return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Interrupted() from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        try:
            return refuse_repeated_options(check_parameter_text(getattr(importlib.import_module(module), attr)))
        except (ImportError, AttributeError) as exc:
            raise click.ClickException(f"command {name!r} is unavailable: {exc}") from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands from the static table, without importing them."""
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ltrsched")
def cli() -> None:
    """Design, simulate and validate request schedulers for LLM serving.

    Start with `ltrsched reproduce table1 --quick` or `ltrsched simulate --help`.
    """


def usage_error_line(exc: click.UsageError) -> str:
    """Click's usage error (its usage, a hint and the message, on four lines) as one line naming the help."""
    message = " ".join(exc.format_message().split())
    command = exc.ctx.command_path if exc.ctx is not None else "ltrsched"
    return f"{message} (see '{command} --help')"


#: Longest word an error line shows whole [characters]: longer ones (a value of thousands of characters, as a
#: script's runaway variable gives) are cut to their start and end. Paths of up to 1,000 characters stay whole.
MAX_SHOWN_WORD = 1000


def cut_long_words(line: str, limit: int = MAX_SHOWN_WORD) -> str:
    """``line`` with each space-separated word longer than ``limit`` characters cut to its start and end: the
    error for ``-j`` given a 5,000-character value was a line of 5,100 characters, the value repeated whole."""
    if len(line) <= limit:
        return line
    return " ".join(w if len(w) <= limit else f"{w[:40]}...{w[-20:]} ({len(w):,} characters)"
                    for w in line.split(" "))


def name_too_long_line(exc: OSError) -> str:
    """The error for a path too long for the file system (ENAMETOOLONG: a name of more than 255 bytes, or a path of
    more than 4,096, on Linux), which any option taking a file (``-w``, ``-o``, ``-p``, ``--cdf``) met as a
    traceback from wherever it was first looked at; the path cut to its start and end."""
    name = str(exc.filename if exc.filename is not None else "a path")
    shown = name if len(name) <= 80 else f"{name[:40]}...{name[-20:]} ({len(name):,} characters)"
    return one_line(f"{shown}: the file name is too long for the file system (most allow 255 bytes per name); "
                    "give a shorter one")


def interrupted_exit_code(cause: BaseException | None) -> int:
    """128 + the number of the signal that stopped a command, as a shell or a batch system reads it: the one a
    ``KeyboardInterrupt`` names (``KeyboardInterrupt("SIGTERM")``: 143, ``"SIGHUP"``: 129, as ``ltrsched label`` stops
    on them), else Ctrl-C's SIGINT (130)."""
    import signal

    name = cause.args[0] if isinstance(cause, KeyboardInterrupt) and cause.args else None
    number = getattr(signal.Signals, name, None) if isinstance(name, str) and name.startswith("SIG") else None
    return 128 + int(number if isinstance(number, signal.Signals) else signal.SIGINT)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input prints one line and exits 2. Plugins the command loads are registered until
    it ends (:mod:`ltrsched.plugin_scope`). Warnings and notes are held while the command
    runs (:class:`Notices`): printed once it has run (or been interrupted, or failed for another reason than its
    input), dropped when its input was bad (exit code 2)."""
    from ltrsched.plugin_scope import command_plugins

    notices = Notices(sys.stderr)
    sys.stderr = notices
    failed = False
    try:
        with command_plugins():  # (the command's plugins stay registered while its error line names their files)
            _run(argv, notices)
    except SystemExit as exc:
        failed = exc.code == 2  # bad input: its one-line error alone
        raise
    finally:
        sys.stderr = notices.stream
        if failed:
            notices.drop()
        notices.release()


def _run(argv: list[str] | None, notices: Notices) -> None:
    """:func:`main`'s command, its errors each as one line with its exit code."""
    try:
        with missing_glyphs_noted(notices):  # (a note ahead of any error line; dropped with bad input's error)
            cli.main(args=argv, prog_name="ltrsched", standalone_mode=False)
    except UserError as exc:  # (a workload file named "a\nb.csv" made its error two lines)
        notices.explain_error(explanations(exc))  # (what a file's reading left out, ahead of "has only 1")
        click.echo(f"error: {cut_long_words(one_line(exc))}", err=True)
        sys.exit(2)
    except RunFailedError as exc:  # (not bad input: the warnings, e.g. of workers that died, stay; above it)
        notices.release()
        click.echo(f"error: {cut_long_words(one_line(exc))}", err=True)
        sys.exit(1)
    except (click.exceptions.Abort, Interrupted) as exc:
        with contextlib.suppress(OSError):  # (a terminal that hung up, SIGHUP: the exit code still says why)
            if isinstance(exc, Interrupted) and notices.stream.isatty():  # (after the terminal's "^C", not on it)
                notices.stream.write("\n")
            notices.release()  # (ahead of the last line)
            click.echo("aborted", err=True)
        sys.exit(interrupted_exit_code(exc.__cause__ if isinstance(exc, Interrupted) else None))
    except click.UsageError as exc:  # a mistyped option, value or command: one line too
        if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # `ltrsched` alone: the help
            exc.show()
            sys.exit(2)
        click.echo(f"error: {cut_long_words(usage_error_line(exc))}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        notices.release()
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # plugin code that raised is bad input: one line; anything else is a bug of ours
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:  # a path given: a traceback wherever read
            click.echo(f"error: {name_too_long_line(exc)}", err=True)
            sys.exit(2)
        from ltrsched.plugin_errors import plugin_error_line

        line = plugin_error_line(exc)
        if line is None:
            raise
        click.echo(f"error: {line}", err=True)
        sys.exit(2)
    except BaseException as exc:  # plugin code that calls sys.exit() mid-run (the run was lost, exit code 0), or
        # raises another exception that is no Exception (a traceback)
        from ltrsched.plugin_errors import plugin_frame, plugin_error_line

        if plugin_frame(exc) is None:
            raise
        line = plugin_error_line(exc)
        if line is None:  # LTRSCHED_TRACEBACK=1: the traceback, still a failure
            raise RuntimeError(f"plugin code raised {type(exc).__name__} during the run") from exc
        click.echo(f"error: {line}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
