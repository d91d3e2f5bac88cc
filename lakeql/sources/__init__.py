"""Where lake tables come from beyond local Parquet: table formats with a log (Delta, Iceberg) and
object storage (``s3://`` and other fsspec/pyarrow URLs). Discovery itself is :mod:`lakeql.lake`."""
