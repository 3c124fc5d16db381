"""Reading a batch's records in chunks: files, folders, partitions and row keys."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelfactory.errors import DataSourceError
from modelfactory.scoring.sources import Source

FRAME = pd.DataFrame({"id": [f"c{i}" for i in range(10)], "x": range(10)})


def _read(source: Source, partition=0, partitions=1, chunk_rows=3) -> pd.DataFrame:
    chunks = list(source.chunks(partition, partitions, chunk_rows))
    if not chunks:
        return pd.DataFrame(columns=["x", "key"])
    return pd.concat([c.frame.assign(key=c.keys.to_pylist()) for c in chunks], ignore_index=True)


@pytest.mark.parametrize("sep", [";", ","])
def test_csv_in_chunks_with_row_numbers_as_keys(tmp_path, sep):
    path = tmp_path / "records.csv.gz"
    FRAME.to_csv(path, sep=sep, index=False)
    source = Source(str(path))
    assert source.units() == 1 and source.rows() is None
    read = _read(source)
    assert read["x"].tolist() == list(range(10))
    assert read["key"].tolist() == [str(i) for i in range(1, 11)]  # as a user counts rows


def test_parquet_row_groups_are_the_partitions(tmp_path):
    path = tmp_path / "records.parquet"
    pq.write_table(pa.Table.from_pandas(FRAME), path, row_group_size=4)  # groups of 4, 4, 2
    source = Source(str(path), key_column="id")
    assert source.units() == 3 and source.rows() == 10
    parts = [_read(source, k, 2) for k in range(2)]
    assert parts[0]["x"].tolist() == [0, 1, 2, 3, 8, 9] and parts[1]["x"].tolist() == [4, 5, 6, 7]
    assert parts[0]["key"].tolist() == ["c0", "c1", "c2", "c3", "c8", "c9"]
    numbered = _read(Source(str(path)), 1, 2)
    assert numbered["key"].tolist() == ["5", "6", "7", "8"]  # positions in the whole file


def test_a_folder_of_parquet_files_is_one_unit_per_file(tmp_path):
    (tmp_path / "set").mkdir()
    FRAME.head(6).to_parquet(tmp_path / "set" / "part-0.parquet")
    FRAME.tail(4).to_parquet(tmp_path / "set" / "part-1.parquet")
    source = Source(str(tmp_path / "set"))
    assert source.units() == 2 and source.rows() == 10
    assert _read(source, 1, 2)["key"].tolist() == [f"part-1.parquet:{i}" for i in range(1, 5)]


def test_a_database_query_is_read_in_chunks(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'records.db'}"
    FRAME.to_sql("customers", sa.create_engine(url), index=False)
    source = Source(url, query="SELECT * FROM customers WHERE x >= 4", key_column="id")
    assert _read(source)["key"].tolist() == [f"c{i}" for i in range(4, 10)]
    broken = Source(url, query="SELECT * FROM nowhere")
    with pytest.raises(DataSourceError, match="the query failed.*nowhere"):
        _read(broken)


@pytest.mark.parametrize(
    "source, message",
    [
        (lambda tmp: Source(str(tmp / "missing.csv")), "no such file or folder"),
        (lambda tmp: Source(str(tmp / "records.csv"), key_column="customer"), "no key column"),
    ],
)
def test_bad_sources_are_named(tmp_path, source, message):
    FRAME.to_csv(tmp_path / "records.csv", index=False)
    with pytest.raises(DataSourceError, match=message):
        _read(source(tmp_path))
