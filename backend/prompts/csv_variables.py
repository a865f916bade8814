"""Variable sets for a template batch, read from an uploaded CSV and checked before anything runs.

The header row names the template's variables (each exactly once, in any order); every further
row is one run. All problems are collected, each naming the row (and the file line) or the column
to fix, and a file with any problem yields no rows: a batch never starts half-checked.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

MAX_ROWS = 500
MAX_BYTES = 2 * 1024 * 1024
MAX_PROBLEMS = 20  # past this the list says how many more: a broken file should not bury the first ones


class CSVVariablesError(ValueError):
    """The file cannot be used; `problems` lists every reason found, each naming what to fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class VariableRows:
    rows: list[dict[str, str]]
    row_numbers: list[int]  # 1 = the first row after the header


def read_variables(data: bytes, variables: list[str], max_rows: int = MAX_ROWS) -> VariableRows:
    """The rows of `data` as {variable: value} dicts; CSVVariablesError naming every problem."""
    if not variables:
        raise CSVVariablesError(["This template has no {variables}: run it from its Run screen instead."])
    if len(data) > MAX_BYTES:
        raise CSVVariablesError([f"The file is {len(data) // 1024} KB; at most {MAX_BYTES // 1024} KB."])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CSVVariablesError([f"The file is not UTF-8 text (byte {exc.start + 1}): save it as CSV UTF-8."]) from None
    if "\x00" in text:
        raise CSVVariablesError(["The file is not a CSV text file (it holds binary data): export it as CSV."])
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise CSVVariablesError([f"The file is not valid CSV: {exc}."]) from None
    if not records or not any(cell.strip() for cell in records[0]):
        raise CSVVariablesError(
            [f"The file is empty or has no header row: its first line must name the columns {', '.join(variables)}."]
        )
    header = [cell.strip() for cell in records[0]]
    problems: list[str] = []
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if not name:
            problems.append(f"Column {position} of the header has no name.")
        elif name in seen:
            problems.append(f"Column “{name}” appears twice in the header.")
        seen.add(name)
    unknown = [name for name in header if name and name not in variables]
    missing = [name for name in variables if name not in header]
    if unknown:
        problems.append(
            f"Unknown column(s): {', '.join(unknown)}. This template's variables are {', '.join(variables)}."
        )
    if missing:
        problems.append(f"Missing column(s): {', '.join(missing)}: the header must name every variable.")
    body = records[1:]
    while body and not any(cell.strip() for cell in body[-1]):
        body.pop()  # trailing blank lines are the file's end, not empty rows
    if not body:
        problems.append("The file has a header but no rows: add one row per run.")
    elif len(body) > max_rows:
        problems.append(f"The file has {len(body)} rows; a batch runs at most {max_rows}: split the file.")
    rows: list[dict[str, str]] = []
    numbers: list[int] = []
    if not problems:
        for number, record in enumerate(body, start=1):
            where = f"Row {number} (line {number + 1})"
            if not any(cell.strip() for cell in record):
                problems.append(f"{where} is empty: remove it or fill it in.")
                continue
            if len(record) != len(header):
                problems.append(f"{where} has {len(record)} value(s); the header names {len(header)} column(s).")
                continue
            values = dict(zip(header, (cell.strip() for cell in record), strict=True))
            blank = [name for name in variables if not values[name]]
            if blank:
                problems.append(f"{where}: column(s) {', '.join(blank)} empty.")
                continue
            rows.append({name: values[name] for name in variables})
            numbers.append(number)
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"… and {len(problems) - MAX_PROBLEMS} more problem(s).")
        raise CSVVariablesError(shown)
    return VariableRows(rows=rows, row_numbers=numbers)
