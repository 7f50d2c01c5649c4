"""load_csv: formats it accepts, a specific one-line message for each kind of impossible data, and
bounded time and memory on huge files (a giant line fails at once, millions of bars load in a few
times their own size)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataError, csvlines, load_csv, synthetic_market

GOOD = """{time},Open,HIGH,low,Close,Volume
{t0},100,110,90,105,5
{t1},105,112,101,108,7
{t2},108,109,100,101,3
"""
TIMES = {
    "iso": ("2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"),
    "naive": ("2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00"),
    "epoch_s": ("1704067200", "1704070800", "1704074400"),
    "epoch_ms": ("1704067200000", "1704070800000", "1704074400000"),
}


def write(tmp_path, text, name="bars.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("time_col", ["datetime", "Timestamp", "DATE"])
@pytest.mark.parametrize("fmt", sorted(TIMES))
def test_accepts_aliases_and_time_formats(tmp_path, time_col, fmt):
    t0, t1, t2 = TIMES[fmt]
    df = load_csv(write(tmp_path, GOOD.format(time=time_col, t0=t0, t1=t1, t2=t2)))
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert str(df.index.tz) == "UTC"
    assert df.index[0] == pd.Timestamp("2024-01-01T00:00Z") and df.index[2] == pd.Timestamp("2024-01-01T02:00Z")
    assert df.dtypes.eq(np.float64).all()
    assert df["close"].tolist() == [105.0, 108.0, 101.0]


def test_round_trip_of_synthetic_market(tmp_path):
    src = synthetic_market(300, seed=2)[["open", "high", "low", "close", "volume"]]
    path = tmp_path / "m.csv"
    src.to_csv(path, float_format="%.17g")
    back = load_csv(path)
    pd.testing.assert_frame_equal(back, src, check_freq=False)


def test_gaps_are_allowed_and_reported(tmp_path):
    text = "datetime,open,high,low,close,volume\n" + "\n".join(
        f"2024-01-01T{h:02d}:00Z,1,2,0.5,1.5,1" for h in (0, 1, 2, 6, 7, 9))
    df = load_csv(write(tmp_path, text))
    gaps = df.attrs["gaps"]
    assert (gaps.count, gaps.missing_bars, gaps.largest) == (2, 4, pd.Timedelta(hours=4))


HEADER = "datetime,open,high,low,close,volume\n"
OK_ROW = "2024-01-01T00:00Z,100,110,90,105,5\n"


@pytest.mark.parametrize("body, message", [
    ("datetime,open,high,low,volume\n" + "2024-01-01,1,2,0.5,1\n", r"missing column\(s\) \['close'\]"),
    ("time,open,high,low,close,volume\n" + "2024-01-01,1,2,0.5,1,1\n", "no time column"),
    (HEADER + OK_ROW + "yesterday-ish,100,110,90,105,5\n", r"unparsable date 'yesterday-ish'.* row 3"),
    (HEADER + OK_ROW + OK_ROW, r"duplicate timestamp at row 3"),
    (HEADER + OK_ROW + "2023-12-31T00:00Z,100,110,90,105,5\n", r"timestamps go backwards at row 3"),
    (HEADER + OK_ROW + "2024-01-01T01:00Z,100,,90,105,5\n", r"column 'high' is missing, NaN .* row 3"),
    (HEADER + OK_ROW + "2024-01-01T01:00Z,100,110,90,nan,5\n", r"column 'close' is missing, NaN .* row 3"),
    (HEADER + OK_ROW + "2024-01-01T01:00Z,0,110,90,105,5\n", r"non-positive price at row 3"),
    (HEADER + OK_ROW + "2024-01-01T01:00Z,100,110,-1,105,5\n", r"non-positive price at row 3"),
    (HEADER + OK_ROW + "2024-01-01T01:00Z,100,80,90,85,5\n", r"high < low at row 3"),
    (HEADER + OK_ROW + "2024-01-01T01:00Z,100,110,90,120,5\n", r"open/close outside the high-low range at row 3"),
    (HEADER + OK_ROW + "2024-01-01T01:00Z,100,110,90,105,-5\n", r"negative volume at row 3"),
    (HEADER, "no rows"),
])
def test_rejects_impossible_data_naming_the_row(tmp_path, body, message):
    with pytest.raises(DataError, match=message):
        load_csv(write(tmp_path, body))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_csv(tmp_path / "nope.csv")


def rejection(path) -> str:
    """The message load_csv rejects ``path`` with; it must be a DataError of one line naming the file."""
    with pytest.raises(DataError) as info:
        load_csv(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 300
    return message


EPOCH_HEADER = "timestamp,open,high,low,close,volume\n"


def epoch_rows(start_s: int, count: int, unit: str) -> str:
    scale = 1000 if unit == "ms" else 1
    return "".join(f"{(start_s + 3600 * i) * scale},100,110,90,105,5\n" for i in range(count))


@pytest.mark.parametrize("first, then", [("s", "ms"), ("ms", "s")])
def test_mixed_epoch_units_are_rejected_naming_the_first_odd_row(tmp_path, first, then):
    # the file: 148 hourly bars in seconds, then milliseconds; they used to load, the seconds in
    # 1970, 3.6 s apart (the unit was chosen for the whole column by its largest value)
    text = EPOCH_HEADER + epoch_rows(1704067200, 148, first) + epoch_rows(1704067200 + 148 * 3600, 20, then)
    message = rejection(write(tmp_path, text))
    units = {"s": "seconds", "ms": "milliseconds"}
    assert f"at row 150 reads as {units[then]} (2024-01-07 04:00:00+00:00), but row 2 " in message
    assert f"as {units[first]}: the column mixes units" in message


@pytest.mark.parametrize("time_col, value, detail", [
    ("datetime", "9999-12-31T00:00:00Z", ""),
    ("date", "1600-01-01", ""),
    ("timestamp", "253402214400000", " (epoch milliseconds: the year 9999)"),
    ("timestamp", "-9999999999999", " (epoch milliseconds: the year 1653)"),
])
def test_dates_out_of_range_are_named_with_file_row_and_value(tmp_path, time_col, value, detail):
    # these raised pandas' "Out of bounds nanosecond timestamp: 9999-12-31 00:00:00", naming neither file nor row
    first = "2024-01-01T00:00Z" if time_col != "timestamp" else "1704067200000"
    text = f"{time_col},open,high,low,close,volume\n{first},100,110,90,105,5\n{value},100,110,90,105,5\n"
    path = write(tmp_path, text)
    assert rejection(path) == (f"{path}: date {value!r} in column {time_col!r} at row 3 is out of range{detail}"
                               f"{';' if detail else ':'} dates must lie between 1677-09-22 and 2262-04-11")


@pytest.mark.parametrize("rows, message", [
    # extra fields on the first rows made pandas take the first columns as an index: "timestamps go
    # backwards" or "duplicate timestamp" about dates nobody wrote
    ([OK_ROW.strip() + ",x,y", "2024-01-01T01:00Z,100,110,90,105,5,x,y", "2024-01-01T02:00Z,100,110,90,105,5"],
     "line 2 has 8 fields, the header has 6"),
    # later ones gave pandas' tokenizer error, with its own line break
    ([OK_ROW.strip(), "2024-01-01T01:00Z,100,110,90,105,5,"], "line 3 has 7 fields, the header has 6"),
    ([OK_ROW.strip(), "2024-01-01T01:00Z,100,110,90"], "line 3 has 4 fields, the header has 6"),
    ([OK_ROW.strip(), '"2024-01-01T01:00Z","1,5",110,90,105,5,""'], "line 3 has 7 fields, the header has 6"),
])
def test_a_line_with_the_wrong_number_of_fields_is_named(tmp_path, rows, message):
    path = write(tmp_path, HEADER + "\n".join(rows) + "\n")
    assert rejection(path) == f"{path}: {message}"


def test_rows_keep_their_line_numbers_across_blank_lines_and_blocks(tmp_path, monkeypatch):
    lines = [f"2024-01-01T{h:02d}:00Z,100,110,90,105,5" for h in range(12)]
    lines[4:4] = ["", "   ", "\r"]                          # blank lines: skipped, still counted
    good = write(tmp_path, "\ufeff" + HEADER + "\r\n".join(lines) + "\r\n\r\n", "good.csv")  # BOM, CRLF
    lines[9] = lines[9].replace(",110,90,", ",80,90,")     # line 11 of the file
    bad = write(tmp_path, HEADER + "\n".join(lines))        # no line break at the end
    expected = f"{bad}: high < low at row 11 (2024-01-01 06:00:00+00:00)"   # the old loader said row 8
    assert rejection(bad) == expected
    whole = load_csv(good)
    assert len(whole) == 12 and whole.index[-1] == pd.Timestamp("2024-01-01T11:00Z")
    for block_bytes in (1, 7, 64):                         # lines split across blocks
        monkeypatch.setattr(csvlines, "BLOCK_BYTES", block_bytes)
        assert rejection(bad) == expected
        pd.testing.assert_frame_equal(load_csv(good), whole)


PROBE = textwrap.dedent("""
    import json, sys, time
    from btdensity.feeds import DataError, load_csv

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    before, start = status("VmRSS:"), time.perf_counter()
    try:
        df = load_csv(sys.argv[1])
    except DataError as exc:
        got = {"error": str(exc)[:1000], "error_chars": len(str(exc))}
    else:
        got = {"bytes": int(df.memory_usage(deep=True).sum()), "rows": len(df), "first": str(df.index[0]),
               "last": str(df.index[-1]), "close": df["close"].iloc[[0, 1234567, -1]].tolist(),
               "gaps": df.attrs["gaps"].count, "dtypes": sorted(set(map(str, df.dtypes)))}
    got.update(seconds=time.perf_counter() - start, growth=status("VmHWM:") - before)
    print(json.dumps(got))
""")


def probe(path, timeout: float) -> dict:
    """load_csv(path) in a fresh process, so that its peak memory (``growth``, bytes) is this load's alone."""
    try:
        run = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_csv({path}) took more than {timeout} s")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads peak memory from /proc")


@needs_proc
@pytest.mark.parametrize("prefix, line", [
    (HEADER + OK_ROW, 3),   # the "2 GB file with 3 real lines": a giant line among them
    ("", 1),                # no line break at all (binary garbage)
], ids=["third-line", "no-line-break"])
def test_a_giant_line_fails_at_once_without_reading_it(tmp_path, prefix, line):
    path = tmp_path / "giant.csv"
    with open(path, "wb") as f:
        f.write(prefix.encode())
        f.truncate(len(prefix) + (200 << 20))              # 200 MB of NUL bytes, sparse on disk
        f.seek(0, os.SEEK_END)
        f.write(b"\n2024-01-01T02:00Z,100,110,90,105,5\n")
    got = probe(path, timeout=30)
    assert got["error"] == f"{path}: line {line} is longer than 1048576 bytes: not a CSV file of bars?", got
    # the old loader took 13 s and 2.4 GB to say "unparsable date '\x00\x00...'" in 800 MB
    assert got["seconds"] < 2.0 and got["growth"] < 64 << 20, got


@needs_proc
def test_millions_of_minute_bars_load_in_a_few_times_their_size(tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    n = 2_000_000   # 115 MB of CSV (pyarrow quotes the header), a 96 MB frame
    rng = np.random.default_rng(0)
    close = np.round(40_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 2)
    open_ = np.r_[close[0], close[:-1]]
    bars = pa.table({"timestamp": 1_704_067_200_000 + 60_000 * np.arange(n, dtype=np.int64), "open": open_,
                     "high": np.round(np.maximum(open_, close) * 1.0005, 2),
                     "low": np.round(np.minimum(open_, close) * 0.9995, 2), "close": close,
                     "volume": np.round(rng.uniform(0, 100, n), 3)})
    path = tmp_path / "btc_1m.csv"
    pacsv.write_csv(bars, path)
    got = probe(path, timeout=120)
    assert got["rows"] == n and got["gaps"] == 0 and got["dtypes"] == ["float64"]
    assert (got["first"], got["last"]) == ("2024-01-01 00:00:00+00:00", "2027-10-20 21:19:00+00:00")
    assert got["close"] == close[[0, 1234567, -1]].tolist()
    # about 4x here (the validation's copies included); the old loader took 7x, and 8.8 GB for 2 GB
    assert got["growth"] < 5.5 * got["bytes"], got
