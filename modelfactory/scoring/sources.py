"""Where a batch's records come from, read in chunks so memory stays flat in the number of rows.

A source is a CSV (optionally gzipped) or Parquet file, a folder of Parquet files, an
http(s) URL of either (downloaded to a temporary file first), or a database (a SQLAlchemy
URL and a ``SELECT``). Each chunk carries the row keys of its rows: the values of a key
column when one is named, else the row's position in the source, counted from 1 as a user
counts rows in a file (``<file>:<row>`` for a folder of files).

Parquet is read as Arrow and stays Arrow (no Python object per value); CSV and query
results are read by pandas, whose inference of each column's type batch scoring's checks
rely on. A chunk offers either kind column by column (:meth:`Chunk.column`).

Partitions: a source is cut into units that can be read independently, the row groups of
a Parquet file or the files of a folder, and partition ``k`` of ``n`` reads units
``k, k + n, k + 2n, ...``. A CSV file, a URL and a query are one unit: they cannot be
entered in the middle without reading what comes before.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelfactory.data.io import is_url
from modelfactory.errors import DataSourceError

DEFAULT_CHUNK_ROWS = 100_000


@dataclass
class Chunk:
    """Records as read (every column of the source): an Arrow table for Parquet, a pandas
    frame for CSV and queries; with one row key (text) per record."""

    records: pa.Table | pd.DataFrame
    keys: pa.Array
    unit: int  # which unit of the source the chunk comes from

    def __len__(self) -> int:
        return len(self.records)

    @property
    def columns(self) -> list[str]:
        if isinstance(self.records, pa.Table):
            return self.records.column_names
        return [str(c) for c in self.records.columns]

    def column(self, name: str) -> pa.ChunkedArray | pd.Series:
        if isinstance(self.records, pa.Table):
            return self.records.column(name)
        return self.records[name].reset_index(drop=True)

    @property
    def frame(self) -> pd.DataFrame:
        """The records as a pandas frame (converted when they were read as Arrow)."""
        if isinstance(self.records, pa.Table):
            return self.records.to_pandas()
        return self.records

    def rows(self, mask, columns: list[str]) -> pd.DataFrame:
        """Some columns of the rows ``mask`` selects (a numpy boolean array), as pandas."""
        if isinstance(self.records, pa.Table):
            return self.records.select(columns).filter(pa.array(mask)).to_pandas()
        return self.records.reset_index(drop=True).loc[mask, columns]


@dataclass
class Source:
    """A readable batch input; ``name`` is what messages show (passwords hidden)."""

    location: str
    query: str = ""
    key_column: str = ""
    name: str = ""
    _download: Path | None = field(default=None, repr=False)

    def __post_init__(self):
        from modelfactory.sql import shown_url

        self.name = self.name or (shown_url(self.location) if self.query else self.location)

    # -- what kind of source ------------------------------------------------------------
    @property
    def is_query(self) -> bool:
        return bool(self.query)

    def _local(self) -> Path:
        """The file or folder to read (an http(s) source is downloaded once, here)."""
        if self._download is not None:
            return self._download
        if is_url(self.location) and urlparse(self.location).scheme in ("http", "https"):
            self._download = _download(self.location)
            return self._download
        path = Path(
            urlparse(self.location).path if self.location.startswith("file:") else self.location
        )
        if not path.exists():
            raise DataSourceError(f"{self.name}: no such file or folder")
        return path

    def _parquet_files(self) -> list[Path] | None:
        path = self._local()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".pq"))
            if not files:
                raise DataSourceError(f"{self.name}: a folder without .parquet files")
            return files
        if _is_parquet(path):
            return [path]
        return None

    def units(self) -> int:
        """How many independently readable units the source has."""
        if self.is_query:
            return 1
        files = self._parquet_files()
        if files is None:
            return 1
        if len(files) > 1:
            return len(files)
        import pyarrow.parquet as pq

        return max(1, _parquet(files[0], self.name, pq).metadata.num_row_groups)

    def rows(self) -> int | None:
        """The number of rows when the source says so without being read (Parquet), else None."""
        if self.is_query or self._parquet_files() is None:
            return None
        import pyarrow.parquet as pq

        return sum(
            _parquet(f, self.name, pq).metadata.num_rows for f in self._parquet_files() or []
        )

    # -- reading ------------------------------------------------------------------------
    def chunks(
        self, partition: int = 0, partitions: int = 1, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> Iterator[Chunk]:
        """The records of partition ``partition`` of ``partitions``, ``chunk_rows`` at a time."""
        if not 0 <= partition < partitions:
            raise ValueError(f"partition must be in 0..{partitions - 1}, got {partition}")
        if self.is_query:
            if partition == 0:
                yield from self._query_chunks(chunk_rows)
            return
        files = self._parquet_files()
        if files is None:
            if partition == 0:
                yield from self._csv_chunks(chunk_rows)
            return
        yield from self._parquet_chunks(files, partition, partitions, chunk_rows)

    def _keys(self, records: pa.Table | pd.DataFrame, first_row: int, prefix: str = "") -> pa.Array:
        if self.key_column:
            names = records.column_names if isinstance(records, pa.Table) else list(records.columns)
            if self.key_column not in names:
                raise DataSourceError(
                    f"{self.name}: no key column '{self.key_column}' (columns: "
                    f"{', '.join(map(str, names[:30]))})"
                )
            return _key_text(self.name, self.key_column, records, first_row)
        numbers = pa.array(np.arange(first_row + 1, first_row + len(records) + 1))
        text = pc.cast(numbers, pa.string())
        return pc.binary_join_element_wise(prefix, text, "") if prefix else text

    def _parquet_chunks(
        self, files: list[Path], partition: int, partitions: int, chunk_rows: int
    ) -> Iterator[Chunk]:
        import pyarrow.parquet as pq

        if len(files) > 1:  # a folder: whole files are the units
            for unit, path in enumerate(files):
                if unit % partitions != partition:
                    continue
                handle = _parquet(path, self.name, pq)
                first, prefix = 0, f"{path.relative_to(self._local())}:"
                for batch in handle.iter_batches(batch_size=chunk_rows):
                    table = pa.Table.from_batches([batch])
                    yield Chunk(table, self._keys(table, first, prefix), unit)
                    first += len(table)
            return
        handle = _parquet(files[0], self.name, pq)
        offsets = [0]
        for group in range(handle.metadata.num_row_groups):
            offsets.append(offsets[-1] + handle.metadata.row_group(group).num_rows)
        for unit in range(partition, handle.metadata.num_row_groups, partitions):
            first = offsets[unit]
            for batch in handle.iter_batches(batch_size=chunk_rows, row_groups=[unit]):
                table = pa.Table.from_batches([batch])
                yield Chunk(table, self._keys(table, first), unit)
                first += len(table)

    def _csv_chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        path = self._local()
        try:
            reader = pd.read_csv(path, sep=_separator(path), chunksize=chunk_rows, low_memory=False)
            first = 0
            for frame in reader:
                yield Chunk(frame, self._keys(frame, first), 0)
                first += len(frame)
        except pd.errors.EmptyDataError as exc:
            raise DataSourceError(f"{self.name}: the file is empty") from exc
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataSourceError(f"{self.name}: cannot be read as CSV ({exc})") from exc

    def _query_chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        import sqlalchemy as sa

        from modelfactory.sql import engine

        try:
            with engine(self.location).connect() as connection:
                # A server-side cursor: the database sends the rows a chunk at a time.
                connection = connection.execution_options(stream_results=True)
                first = 0
                for frame in pd.read_sql_query(
                    sa.text(self.query), connection, chunksize=chunk_rows
                ):
                    yield Chunk(frame, self._keys(frame, first), 0)
                    first += len(frame)
        except sa.exc.SQLAlchemyError as exc:
            raise DataSourceError(
                f"{self.name}: the query failed ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            ) from exc

    def close(self) -> None:
        if self._download is not None:
            shutil.rmtree(self._download.parent, ignore_errors=True)
            self._download = None


def _key_text(
    source: str, column: str, records: pa.Table | pd.DataFrame, first_row: int
) -> pa.Array:
    """The key column's values as text, as ``str()`` writes them; an empty one is an error."""
    values = records.column(column) if isinstance(records, pa.Table) else records[column]
    if isinstance(values, pa.ChunkedArray) and (
        pa.types.is_integer(values.type) or pa.types.is_string(values.type)
    ):
        empty = values.is_null().to_numpy(zero_copy_only=False)
        text = pc.cast(values, pa.string()).combine_chunks()
    else:  # other types (and pandas) through str(), as a user reads them
        series = values.to_pandas() if isinstance(values, pa.ChunkedArray) else values
        series = series.reset_index(drop=True)
        empty = series.isna().to_numpy()
        text = pa.array(series.astype(str), type=pa.string())
    if empty.any():
        rows = [first_row + int(i) + 1 for i in np.flatnonzero(empty)[:5]]
        raise DataSourceError(f"{source}: key column '{column}' is empty in rows {rows}")
    return text


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"


def _parquet(path: Path, name: str, pq):
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's errors are many; the user needs the file and the why
        raise DataSourceError(f"{name}: {path.name} cannot be read as Parquet ({exc})") from exc


def _separator(path: Path) -> str:
    """';' for the UCI bank-marketing style, ',' otherwise: whichever the header has more of."""
    import gzip

    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rt", errors="replace") as handle:
        header = handle.readline()
    return ";" if header.count(";") > header.count(",") else ","


def _download(url: str) -> Path:
    import httpx

    name = Path(urlparse(url).path).name or "download"
    target = Path(tempfile.mkdtemp(prefix="modelfactory-batch-")) / name
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
            response.raise_for_status()
            with open(target, "wb") as handle:
                for block in response.iter_bytes():
                    handle.write(block)
    except httpx.HTTPError as exc:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise DataSourceError(f"{url}: cannot be downloaded ({exc})") from exc
    return target
