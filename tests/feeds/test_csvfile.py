"""load_csv: formats it accepts, and a specific message for each kind of impossible data."""
import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import DataError, load_csv, synthetic_market

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
