-- ---------------------------------------------------------------------------
-- Object keys name the first and the last offset (object_key.c)
-- ---------------------------------------------------------------------------

CREATE FUNCTION stocks_stream.parse_object_key(
    key text,
    OUT kind text, OUT prefix text, OUT topic text, OUT day date, OUT hour integer,
    OUT partition integer, OUT first_offset bigint, OUT last_offset bigint, OUT compressed boolean)
AS 'MODULE_PATHNAME', 'ss_parse_object_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION stocks_stream.parse_object_key IS
    'How the loaders read a bronze object key: kind archive (<prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/<partition>-<first>-<last>.ndjson[.gz], day and hour of the first message in UTC), archive_v1 (0.1.0 keys, first offset only: last_offset NULL), python_quote (<symbol>/<unix_ts>.json) or NULL.';
REVOKE ALL ON FUNCTION stocks_stream.parse_object_key(text) FROM PUBLIC;

COMMENT ON COLUMN stocks_stream.pipelines.key_prefix IS
    'Key prefix: objects are <prefix>/<topic>/dt=YYYY-MM-DD/hour=HH/<partition>-<first offset>-<last offset>.ndjson[.gz]; the same key always holds the same bytes.';
