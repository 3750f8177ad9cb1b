"""A ``.csv`` whose fields are separated by another character (``;``, as Excel writes it where the decimal mark is a
comma; a tab; ``|``): read with commas, its header is one column, whose error says so."""

from __future__ import annotations

#: The other separators a one-column header is checked for.
OTHER_SEPARATORS = (";", "\t", "|")


def separator_hint(columns: list[str]) -> str:
    """``" (one column: the file separates its fields by ';', ...)"`` for a header read as one column (``columns``)
    that holds another separator, for the error about a column it lacks; ``""`` otherwise."""
    other = next((sep for sep in OTHER_SEPARATORS if len(columns) == 1 and sep in columns[0]), None)
    return (f" (one column: the file separates its fields by {other!r}, where a .csv here separates them by ','; save "
            "it with commas)") if other else ""
