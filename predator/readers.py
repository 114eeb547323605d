"""Streaming readers for declaration exports: CSV, XLSX, JSONL/NDJSON and Parquet.

``read_rows(path)`` yields :class:`RawRow` objects, one per data row, with the physical position of
the row so a quarantined row can be found in the source file:

- CSV: the line the record starts on (the header is line 1, the first data row line 2);
- XLSX: the sheet row number; JSONL: the line number; Parquet: row index + 1.

Memory stays bounded: every format is read row by row or in batches. Blank rows are skipped.
A file that cannot be opened or parsed raises :class:`ReaderError`; a JSONL line that is not a JSON
object is yielded as ``{"_raw": text, "_error": reason}`` so the normaliser quarantines it.
"""
from __future__ import annotations

import codecs
import csv
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RAW_KEY = "_raw"
ERROR_KEY = "_error"
EXTRA_KEY = "_extra"  # CSV cells beyond the header's width
SUPPORTED_SUFFIXES = (".csv", ".xlsx", ".jsonl", ".ndjson", ".parquet")

_CSV_DELIMITERS = (";", ",", "\t")
_CHUNK = 1 << 20
_PARQUET_BATCH = 2048


@dataclass(slots=True)
class RawRow:
    """One data row as read: where it came from and its cells keyed by the file's own headers."""

    source: str
    line: int
    data: dict[str, Any]


class ReaderError(Exception):
    """The file cannot be read at all (missing, unknown format, corrupt)."""


def read_rows(path: str | Path) -> Iterator[RawRow]:
    """Yield the data rows of a declaration export, chosen by file extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    readers = {".csv": _read_csv, ".xlsx": _read_xlsx, ".jsonl": _read_jsonl,
               ".ndjson": _read_jsonl, ".parquet": _read_parquet}
    if suffix not in readers:
        raise ReaderError(f"{path}: unsupported file type '{suffix}' (expected one of {', '.join(SUPPORTED_SUFFIXES)})")
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    return readers[suffix](path)


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` if the whole file decodes as strict UTF-8 (BOM or not), else ``cp1251``.

    Decodes incrementally in chunks, so a large file is checked without loading it.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp1251"
    return "utf-8-sig"


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a header line: whichever of ``;`` ``,`` tab occurs most outside quotes.

    A separator followed by a space is prose inside a header (``Маса, нетто, кг``), so those count
    only when nothing else separates the line. Ties go to ``;``, the delimiter of Ukrainian exports.
    """
    tight = dict.fromkeys(_CSV_DELIMITERS, 0)
    loose = dict.fromkeys(_CSV_DELIMITERS, 0)
    quoted = False
    for index, char in enumerate(header_line):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in tight:
            loose[char] += 1
            if header_line[index + 1 : index + 2] != " ":
                tight[char] += 1
    counts = tight if any(tight.values()) else loose
    return max(_CSV_DELIMITERS, key=lambda d: counts[d])


def _read_csv(path: Path) -> Iterator[RawRow]:
    encoding = detect_encoding(path)
    # cp1251 leaves a few bytes undefined: replace them rather than fail the whole file.
    with path.open(encoding=encoding, errors="replace" if encoding == "cp1251" else "strict", newline="") as f:
        delimiter = sniff_delimiter(f.readline())
        f.seek(0)
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except csv.Error as exc:
            raise ReaderError(f"{path}: bad CSV header: {exc}") from exc
        while True:
            start = reader.line_num + 1  # the record's first physical line; quoted newlines span more
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ReaderError(f"{path}: line {start}: {exc}") from exc
            if not any(c.strip() for c in cells):
                continue
            data: dict[str, Any] = dict(zip(header, cells))
            if len(cells) > len(header):
                data[EXTRA_KEY] = cells[len(header):]
            yield RawRow(str(path), start, data)


def _read_xlsx(path: Path) -> Iterator[RawRow]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ReaderError(f"{path}: not a readable XLSX workbook: {exc}") from exc
    try:
        if not workbook.worksheets:
            return
        header: list[str] | None = None
        # read_only iter_rows yields empty tuples for missing rows, so enumerate gives sheet row numbers.
        for number, row in enumerate(workbook.worksheets[0].iter_rows(values_only=True), start=1):
            if all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row):
                continue
            if header is None:
                header = ["" if cell is None else str(cell).strip() for cell in row]
                continue
            yield RawRow(str(path), number, {h: v for h, v in zip(header, row) if h})
    finally:
        workbook.close()


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        for number, text in enumerate(f, start=1):
            text = text.strip()
            if not text:
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow(str(path), number, {RAW_KEY: text, ERROR_KEY: f"line is not valid JSON: {exc.msg} at column {exc.colno}"})
                continue
            if not isinstance(data, dict):
                yield RawRow(str(path), number, {RAW_KEY: text, ERROR_KEY: f"line is a JSON {type(data).__name__}, not an object"})
                continue
            yield RawRow(str(path), number, data)


def _read_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ReaderError(f"{path}: not a readable Parquet file: {exc}") from exc
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
            for data in batch.to_pylist():
                number += 1
                yield RawRow(str(path), number, data)
    except (pa.ArrowException, OSError) as exc:
        raise ReaderError(f"{path}: Parquet read failed after row {number}: {exc}") from exc
    finally:
        parquet.close()
