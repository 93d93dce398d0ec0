"""Spark reads the lake's Iceberg tables through their JDBC catalog in
PostgreSQL (run by scripts/lake-spark, which says where the jars come from):
per symbol and UTC day, the rows, the sum of volume and the lowest and
highest price of silver.trades and silver.quotes, and the rows of each bronze
table.  PostgreSQL from the libpq variables, S3 from S3_ENDPOINT,
S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION, as for scripts/lake-commit."""
import argparse
import os

from pyspark.sql import SparkSession

CATALOG = "stocks_stream"           # the catalog_name of the rows in stocks_stream_lake.iceberg_tables

PER_SYMBOL_DAY = """
SELECT symbol, to_date({time}) AS day, count(*) AS n, {volume} AS volume, min(price) AS low, max(price) AS high
  FROM {catalog}.silver.{table} {where}
 GROUP BY symbol, to_date({time}) ORDER BY symbol, day"""


def session(jars):
    env = os.environ
    url = "jdbc:postgresql://{}:{}/{}?currentSchema=stocks_stream_lake".format(
        env.get("PGHOST", "127.0.0.1"), env.get("PGPORT", "5432"), env.get("PGDATABASE", "postgres"))
    c = f"spark.sql.catalog.{CATALOG}"
    builder = (SparkSession.builder.appName("stocks_stream lake").master("local[2]")
               .config("spark.jars", jars)
               .config("spark.driver.memory", "1g")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
               .config(c, "org.apache.iceberg.spark.SparkCatalog")
               .config(f"{c}.catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog")
               .config(f"{c}.uri", url)
               .config(f"{c}.jdbc.user", env.get("PGUSER", "postgres"))
               .config(f"{c}.jdbc.schema-version", "V1")
               # where tables Spark would create go; the lake's tables have their own location
               .config(f"{c}.warehouse", env.get("STOCKS_STREAM_LAKE_WAREHOUSE", "s3://stocks-stream-lake/iceberg"))
               .config(f"{c}.io-impl", "org.apache.iceberg.aws.s3.S3FileIO")
               .config(f"{c}.s3.endpoint", env["S3_ENDPOINT"])
               .config(f"{c}.s3.path-style-access", "true")
               .config(f"{c}.s3.access-key-id", env["S3_ACCESS_KEY"])
               .config(f"{c}.s3.secret-access-key", env["S3_SECRET_KEY"])
               .config(f"{c}.client.region", env.get("S3_REGION", "us-east-1")))
    if env.get("PGPASSWORD"):
        builder = builder.config(f"{c}.jdbc.password", env["PGPASSWORD"])
    return builder.getOrCreate()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jars", required=True, help="comma-separated jars: Iceberg's runtime, aws bundle, JDBC")
    parser.add_argument("--topic", help="only the rows of this source topic")
    args = parser.parse_args()
    spark = session(args.jars)
    spark.sparkContext.setLogLevel("WARN")
    where = ""
    if args.topic:
        where = "WHERE source_topic = '{}'".format(args.topic.replace("'", "''"))
    for table, time, volume in (("trades", "trade_time", "sum(volume)"), ("quotes", "quote_time", "NULL")):
        print(f"-- {CATALOG}.silver.{table}: per symbol and day")
        spark.sql(PER_SYMBOL_DAY.format(time=time, volume=volume, catalog=CATALOG, table=table,
                                        where=where)).show(1000, truncate=False)
    print(f"-- {CATALOG}.bronze: rows per table")
    for row in spark.sql(f"SHOW TABLES IN {CATALOG}.bronze").collect():
        n = spark.sql(f"SELECT count(*) FROM {CATALOG}.bronze.{row.tableName}").collect()[0][0]
        print(f"{row.tableName}\t{n}")
    spark.stop()


if __name__ == "__main__":
    main()
