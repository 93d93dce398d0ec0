-- stocks_stream: silver days tiered to the lake (docs/lake.md).  A
-- retention policy per silver table keeps its newest UTC days in Postgres;
-- CALL stocks_stream.tier_to_lake() moves each older day to S3 as Parquet
-- objects, one step per transaction:
--
--   freeze   the partition takes no more rows (a NOT VALID CHECK (false)
--            constraint: rows already there stay, a late row's load fails
--            and is retried once the day is gone);
--   export   the partition, through a cursor in (symbol, time) order, into
--            objects under deterministic keys, recorded in lake_objects with
--            rows and checksum per symbol (lake_object_symbols);
--   verify   every object read back from S3, its rows and checksums per
--            symbol recomputed and compared with what was recorded and with
--            the partition as it is now: a difference marks the day failed,
--            with the reason, and it stays in Postgres;
--   drop     once every object of the day is verified and registered in an
--            Iceberg snapshot (iceberg_snapshot_id), the partition is
--            detached and dropped.
--
-- lake_days records where each day stands, so a crash anywhere leaves the
-- day in Postgres or fully in the lake and registered, never lost or
-- doubled; the next call redoes the step that did not commit (a redone
-- export overwrites the same keys).  A day whose partition is made again by
-- late rows (load_bronze() after the drop) starts a new round, whose objects
-- take the next numbers.

-- ---------------------------------------------------------------------------
-- The C functions (src/tier/)
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream._lake_export(
    table_name text, day date, bucket text, prefix text, first_part integer,
    OUT part integer, OUT object_key text, OUT bytes bigint,
    OUT symbol text, OUT row_count bigint, OUT checksum bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_lake_export' LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream._lake_export IS
    'Write a silver day''s partition to S3 as Parquet objects numbered from first_part; rows and checksum per object and symbol. Called by tier_to_lake().';

CREATE OR REPLACE FUNCTION stocks_stream._lake_read_objects(
    table_name text, bucket text, keys text[],
    OUT object_key text, OUT symbol text, OUT row_count bigint, OUT checksum bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_lake_read_objects' LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream._lake_read_objects IS
    'Read silver objects back from S3: rows and checksum per object and symbol.';

CREATE OR REPLACE FUNCTION stocks_stream._lake_scan_day(
    table_name text, day date, OUT symbol text, OUT row_count bigint, OUT checksum bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ss_lake_scan_day' LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream._lake_scan_day IS
    'Rows and checksum per symbol of a silver day''s partition as it is now.';

CREATE OR REPLACE FUNCTION stocks_stream._lake_crash_point(point text)
RETURNS void AS 'MODULE_PATHNAME', 'ss_lake_crash_point' LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION stocks_stream._lake_crash_point IS
    'For the crash tests: the backend kills itself here when the superuser-only stocks_stream.test_crash_point names this point.';

-- Checksums add up modulo 2^64 (src/lake/silver_object.c); sums of them
-- are folded back into a signed bigint.
CREATE OR REPLACE FUNCTION stocks_stream._lake_fold(s numeric)
RETURNS bigint LANGUAGE sql IMMUTABLE STRICT
    RETURN CASE WHEN ((s % 18446744073709551616) + 18446744073709551616) % 18446744073709551616 >= 9223372036854775808
                THEN ((s % 18446744073709551616) + 18446744073709551616) % 18446744073709551616 - 18446744073709551616
                ELSE ((s % 18446744073709551616) + 18446744073709551616) % 18446744073709551616 END::bigint;

-- ---------------------------------------------------------------------------
-- Retention policies
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream.set_lake_retention(
    table_name text, hot_days integer, bucket text, prefix text DEFAULT 'lake')
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF table_name IS NULL OR table_name NOT IN ('quotes', 'trades') THEN
        RAISE EXCEPTION 'stocks_stream.set_lake_retention: table_name must be ''quotes'' or ''trades'', got %',
                        coalesce('"' || table_name || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Silver''s tables are quotes and trades; gold stays in Postgres.';
    END IF;
    IF hot_days IS NULL OR hot_days NOT BETWEEN 1 AND 36500 THEN
        RAISE EXCEPTION 'stocks_stream.set_lake_retention: hot_days must be between 1 and 36500, got %',
                        coalesce(hot_days::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'hot_days UTC days stay in Postgres: 1 keeps today only, 7 today and the six days before.';
    END IF;
    PERFORM stocks_stream._check_bucket(bucket);
    IF prefix IS NULL OR prefix !~ '^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$' OR length(prefix) > 256
       OR prefix ~ '(^|/)\.\.?(/|$)' THEN
        RAISE EXCEPTION 'stocks_stream.set_lake_retention: invalid key prefix %', coalesce('"' || prefix || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use up to 256 letters, digits, ''_'', ''.'', ''='', ''-'' in segments separated by single ''/'', without a leading or trailing ''/'' or a ''.'' or ''..'' segment, e.g. ''lake''.';
    END IF;
    INSERT INTO stocks_stream.lake_retention AS r (table_name, hot_days, bucket, prefix)
    VALUES (set_lake_retention.table_name, set_lake_retention.hot_days, set_lake_retention.bucket,
            set_lake_retention.prefix)
    ON CONFLICT ON CONSTRAINT lake_retention_pkey DO UPDATE
       SET hot_days = EXCLUDED.hot_days, bucket = EXCLUDED.bucket, prefix = EXCLUDED.prefix, set_at = now();
END;
$$;
COMMENT ON FUNCTION stocks_stream.set_lake_retention IS
    'Keep the newest hot_days UTC days of a silver table (quotes or trades) in Postgres; tier_to_lake() moves older days to s3://bucket/prefix/silver/<table>/ as Parquet. Setting it again changes the policy.';

CREATE OR REPLACE FUNCTION stocks_stream.drop_lake_retention(table_name text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d record;
BEGIN
    IF table_name IS NULL OR table_name NOT IN ('quotes', 'trades') THEN
        RAISE EXCEPTION 'stocks_stream.drop_lake_retention: table_name must be ''quotes'' or ''trades'', got %',
                        coalesce('"' || table_name || '"', 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM stocks_stream.lake_retention r WHERE r.table_name = drop_lake_retention.table_name;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- days being tiered take rows again; a policy set later starts them
    -- over.  A verified day stays frozen: its objects may be on their way
    -- into Iceberg, and a policy set later drops it.
    FOR d IN SELECT * FROM stocks_stream.lake_days l
              WHERE l.table_name = drop_lake_retention.table_name AND l.state NOT IN ('dropped', 'verified') LOOP
        PERFORM stocks_stream._lake_thaw(d.table_name, d.day);
        UPDATE stocks_stream.lake_days l
           SET state = 'failed', failed_step = 'export', reason = 'the retention policy was dropped',
               failed_at = now(), updated_at = now()
         WHERE l.table_name = d.table_name AND l.day = d.day;
    END LOOP;
    RETURN true;
END;
$$;
COMMENT ON FUNCTION stocks_stream.drop_lake_retention IS
    'Remove a silver table''s retention policy: no more days are tiered, and days being tiered take rows again. Days already in the lake stay there.';

CREATE OR REPLACE VIEW stocks_stream.lake_policies AS
SELECT r.table_name, r.hot_days, r.bucket, r.prefix,
       (now() AT TIME ZONE 'UTC')::date - r.hot_days AS tiers_through, r.set_at
  FROM stocks_stream.lake_retention r;
COMMENT ON VIEW stocks_stream.lake_policies IS 'The retention policies, with the last UTC day tier_to_lake() would tier today.';

-- ---------------------------------------------------------------------------
-- The steps
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION stocks_stream._lake_partition(table_name text, day date)
RETURNS text LANGUAGE sql IMMUTABLE STRICT
    RETURN table_name || '_' || to_char(day, 'YYYYMMDD');

-- the constraint that freezes a partition (a NOT VALID check is never used
-- to exclude the partition from a plan, so the rows stay visible)
CREATE OR REPLACE FUNCTION stocks_stream._lake_freeze(table_name text, day date)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part text := stocks_stream._lake_partition(table_name, day);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = format('stocks_stream.%I', part)::regclass AND conname = part || '_lake_frozen') THEN
        EXECUTE format('ALTER TABLE stocks_stream.%I ADD CONSTRAINT %I CHECK (false) NOT VALID',
                       part, part || '_lake_frozen');
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream._lake_thaw(table_name text, day date)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part text := stocks_stream._lake_partition(table_name, day);
BEGIN
    IF to_regclass(format('stocks_stream.%I', part)) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE stocks_stream.%I DROP CONSTRAINT IF EXISTS %I', part, part || '_lake_frozen');
    END IF;
END;
$$;

-- freeze: a new day, a new round of a day made again by late rows, or a
-- failed day tried again
CREATE OR REPLACE FUNCTION stocks_stream._lake_step_freeze(p_table text, p_day date)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d stocks_stream.lake_days;
    known boolean;
    next_part integer;
BEGIN
    SELECT * INTO d FROM stocks_stream.lake_days WHERE table_name = p_table AND day = p_day FOR UPDATE;
    known := FOUND;
    PERFORM set_config('lock_timeout', '10s', true);
    PERFORM stocks_stream._lake_freeze(p_table, p_day);
    SELECT coalesce(max(part), 0) + 1 INTO next_part
      FROM stocks_stream.lake_objects WHERE table_name = p_table AND day = p_day;
    IF NOT known THEN
        INSERT INTO stocks_stream.lake_days (table_name, day, round, first_part, state)
        VALUES (p_table, p_day, 1, 1, 'frozen');
    ELSIF d.state = 'dropped' THEN
        UPDATE stocks_stream.lake_days
           SET round = d.round + 1, first_part = next_part, state = 'frozen', failed_step = NULL, reason = NULL,
               failed_at = NULL, updated_at = now()
         WHERE table_name = p_table AND day = p_day;
    ELSE
        -- a failed round is redone over its own keys, unless an object of
        -- it is claimed by an Iceberg commit (sql/iceberg.sql) or in a
        -- snapshot already: its bytes must not change under the table
        IF EXISTS (SELECT 1 FROM stocks_stream.lake_objects o
                    WHERE o.table_name = p_table AND o.day = p_day AND o.round = d.round
                      AND (o.iceberg_snapshot_id IS NOT NULL
                           OR EXISTS (SELECT 1 FROM stocks_stream.lake_commit_objects c
                                       WHERE c.bucket = o.bucket AND c.object_key = o.object_key))) THEN
            RAISE EXCEPTION 'stocks_stream.tier_to_lake: % % failed after some of its objects were registered in Iceberg', p_table, to_char(p_day, 'YYYY-MM-DD')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Remove those objects from the Iceberg table, then set their iceberg_snapshot_id to NULL.';
        END IF;
        UPDATE stocks_stream.lake_days SET state = 'frozen', updated_at = now()
         WHERE table_name = p_table AND day = p_day;
    END IF;
    PERFORM stocks_stream._lake_crash_point('frozen');
    RETURN format('froze %s %s', p_table, to_char(p_day, 'YYYY-MM-DD'));
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream._lake_step_export(p_table text, p_day date, p_bucket text, p_prefix text)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d stocks_stream.lake_days;
    n_objects bigint;
    n_rows bigint;
BEGIN
    SELECT * INTO d FROM stocks_stream.lake_days WHERE table_name = p_table AND day = p_day FOR UPDATE;
    -- a redo overwrites the keys a crashed or failed run of the round wrote
    DELETE FROM stocks_stream.lake_objects WHERE table_name = p_table AND day = p_day AND round = d.round;
    WITH x AS MATERIALIZED (
        SELECT * FROM stocks_stream._lake_export(p_table, p_day, p_bucket, p_prefix, d.first_part)),
    objects AS (
        INSERT INTO stocks_stream.lake_objects (table_name, day, bucket, object_key, row_count, bytes, round, part)
        SELECT p_table, p_day, p_bucket, x.object_key, sum(x.row_count), max(x.bytes), d.round, x.part
          FROM x GROUP BY x.part, x.object_key
        RETURNING lake_object_id, part),
    symbols AS (
        INSERT INTO stocks_stream.lake_object_symbols (lake_object_id, symbol, row_count, checksum)
        SELECT o.lake_object_id, x.symbol, sum(x.row_count), stocks_stream._lake_fold(sum(x.checksum::numeric))
          FROM x JOIN objects o ON o.part = x.part
         GROUP BY o.lake_object_id, x.symbol
        RETURNING 1)
    SELECT count(DISTINCT x.part), coalesce(sum(x.row_count), 0) INTO n_objects, n_rows FROM x;
    UPDATE stocks_stream.lake_days SET state = 'exported', updated_at = now()
     WHERE table_name = p_table AND day = p_day;
    PERFORM stocks_stream._lake_crash_point('exported');
    RETURN format('exported %s %s: %s rows in %s objects', p_table, to_char(p_day, 'YYYY-MM-DD'), n_rows, n_objects);
END;
$$;

-- the first difference between the objects read back, what was recorded of
-- them, and the partition as it is now; NULL when there is none
CREATE OR REPLACE FUNCTION stocks_stream._lake_difference(p_table text, p_day date, p_round integer)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keys text[];
    p_bucket text;
    diff text;
BEGIN
    SELECT array_agg(o.object_key ORDER BY o.part), min(o.bucket) INTO keys, p_bucket
      FROM stocks_stream.lake_objects o
     WHERE o.table_name = p_table AND o.day = p_day AND o.round = p_round;
    WITH back AS MATERIALIZED (
        SELECT r.object_key, r.symbol, sum(r.row_count) AS row_count,
               stocks_stream._lake_fold(sum(r.checksum::numeric)) AS checksum
          FROM stocks_stream._lake_read_objects(p_table, coalesce(p_bucket, ''), coalesce(keys, '{}')) r
         GROUP BY r.object_key, r.symbol),
    -- each object as read back against what was recorded when it was written
    objects AS (
        SELECT format('object %s: symbol %s has %s rows (checksum %s) in S3, %s (checksum %s) recorded',
                      coalesce(b.object_key, w.object_key), coalesce(b.symbol, w.symbol),
                      coalesce(b.row_count, 0), b.checksum, coalesce(w.row_count, 0), w.checksum) AS msg
          FROM back b
          FULL JOIN (SELECT o.object_key, s.symbol, s.row_count, s.checksum
                       FROM stocks_stream.lake_objects o
                       JOIN stocks_stream.lake_object_symbols s ON s.lake_object_id = o.lake_object_id
                      WHERE o.table_name = p_table AND o.day = p_day AND o.round = p_round) w
            ON w.object_key = b.object_key AND w.symbol = b.symbol
         WHERE b.row_count IS DISTINCT FROM w.row_count OR b.checksum IS DISTINCT FROM w.checksum),
    -- the day in the lake against the partition as it is now
    whole_day AS (
        SELECT format('symbol %s: %s rows (checksum %s) in Postgres, %s (checksum %s) in the lake',
                      coalesce(p.symbol, l.symbol), coalesce(p.row_count, 0), p.checksum,
                      coalesce(l.row_count, 0), l.checksum) AS msg
          FROM (SELECT s.symbol, sum(s.row_count) AS row_count,
                       stocks_stream._lake_fold(sum(s.checksum::numeric)) AS checksum
                  FROM stocks_stream._lake_scan_day(p_table, p_day) s GROUP BY s.symbol) p
          FULL JOIN (SELECT b.symbol, sum(b.row_count) AS row_count,
                            stocks_stream._lake_fold(sum(b.checksum::numeric)) AS checksum
                       FROM back b GROUP BY b.symbol) l
            ON l.symbol = p.symbol
         WHERE p.row_count IS DISTINCT FROM l.row_count OR p.checksum IS DISTINCT FROM l.checksum)
    SELECT coalesce((SELECT min(msg) FROM objects), (SELECT min(msg) FROM whole_day)) INTO diff;
    RETURN diff;
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream._lake_step_verify(p_table text, p_day date)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d stocks_stream.lake_days;
    diff text;
BEGIN
    SELECT * INTO d FROM stocks_stream.lake_days WHERE table_name = p_table AND day = p_day FOR UPDATE;
    diff := stocks_stream._lake_difference(p_table, p_day, d.round);
    IF diff IS NOT NULL THEN
        UPDATE stocks_stream.lake_days
           SET state = 'failed', failed_step = 'verify', reason = diff, failed_at = clock_timestamp(), updated_at = now()
         WHERE table_name = p_table AND day = p_day;
        RAISE WARNING 'stocks_stream.tier_to_lake: % % failed verification and stays in Postgres: %', p_table, to_char(p_day, 'YYYY-MM-DD'), diff
            USING HINT = 'The next tier_to_lake() exports the day again; stocks_stream.lake_status shows the reason.';
        RETURN format('verification of %s %s failed: %s', p_table, to_char(p_day, 'YYYY-MM-DD'), diff);
    END IF;
    UPDATE stocks_stream.lake_objects SET verified_at = now()
     WHERE table_name = p_table AND day = p_day AND round = d.round;
    UPDATE stocks_stream.lake_days SET state = 'verified', failed_step = NULL, reason = NULL, failed_at = NULL,
           updated_at = now()
     WHERE table_name = p_table AND day = p_day;
    PERFORM stocks_stream._lake_crash_point('verified');
    RETURN format('verified %s %s', p_table, to_char(p_day, 'YYYY-MM-DD'));
END;
$$;

CREATE OR REPLACE FUNCTION stocks_stream._lake_step_drop(p_table text, p_day date)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d stocks_stream.lake_days;
    part text := stocks_stream._lake_partition(p_table, p_day);
    in_postgres bigint;
    in_lake bigint;
BEGIN
    SELECT * INTO d FROM stocks_stream.lake_days WHERE table_name = p_table AND day = p_day FOR UPDATE;
    PERFORM set_config('lock_timeout', '10s', true);
    -- the parent first, as a loader locks them, then a last count
    EXECUTE format('LOCK TABLE stocks_stream.%I IN ACCESS EXCLUSIVE MODE', p_table);
    EXECUTE format('SELECT count(*) FROM stocks_stream.%I', part) INTO in_postgres;
    SELECT coalesce(sum(row_count), 0) INTO in_lake FROM stocks_stream.lake_objects
     WHERE table_name = p_table AND day = p_day AND round = d.round;
    IF in_postgres <> in_lake THEN
        RAISE EXCEPTION 'stocks_stream.tier_to_lake: % % holds % rows in Postgres, % in the lake', p_table, to_char(p_day, 'YYYY-MM-DD'), in_postgres, in_lake
            USING ERRCODE = 'data_corrupted', HINT = 'Rows changed after verification; the next run exports the day again.';
    END IF;
    EXECUTE format('ALTER TABLE stocks_stream.%I DETACH PARTITION stocks_stream.%I', p_table, part);
    PERFORM stocks_stream._lake_crash_point('detached');
    EXECUTE format('DROP TABLE stocks_stream.%I', part);
    UPDATE stocks_stream.lake_days
       SET state = 'dropped', dropped_rows = dropped_rows + in_postgres, failed_step = NULL, reason = NULL,
           failed_at = NULL, updated_at = now()
     WHERE table_name = p_table AND day = p_day;
    PERFORM stocks_stream._lake_crash_point('dropped');
    RETURN format('dropped %s %s from Postgres: %s rows in the lake', p_table, to_char(p_day, 'YYYY-MM-DD'), in_postgres);
END;
$$;

-- The next (table, day) to work on and its step; failed days once per call
-- of tier_to_lake() (those that failed before it started), verified days
-- once Iceberg registered every object of their round.
CREATE OR REPLACE FUNCTION stocks_stream._lake_next_step(since timestamptz)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c record;
    errstate text;
    msg text;
    step text;
BEGIN
    SELECT r.table_name, p.day, r.bucket, r.prefix, d.state INTO c
      FROM stocks_stream.lake_retention r
     CROSS JOIN LATERAL (
         SELECT to_date(right(k.relname, 8), 'YYYYMMDD') AS day
           FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid
          WHERE i.inhparent = format('stocks_stream.%I', r.table_name)::regclass
            AND k.relname ~ ('^' || r.table_name || '_[0-9]{8}$')) p
      LEFT JOIN stocks_stream.lake_days d ON d.table_name = r.table_name AND d.day = p.day
     WHERE p.day <= (now() AT TIME ZONE 'UTC')::date - r.hot_days
       AND (d.state IS NULL OR d.state IN ('frozen', 'exported')
            OR (d.state = 'dropped' AND (d.failed_at IS NULL OR d.failed_at < since))
            OR (d.state = 'failed' AND d.failed_at < since)
            OR (d.state = 'verified'
                AND NOT EXISTS (SELECT 1 FROM stocks_stream.lake_objects o
                                 WHERE o.table_name = d.table_name AND o.day = d.day AND o.round = d.round
                                   AND (o.iceberg_snapshot_id IS NULL OR o.verified_at IS NULL))))
     ORDER BY r.table_name, p.day
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    step := CASE coalesce(c.state, 'dropped')
                WHEN 'frozen' THEN 'export' WHEN 'exported' THEN 'verify' WHEN 'verified' THEN 'drop'
                ELSE 'freeze' END;
    BEGIN
        RETURN CASE step
            WHEN 'freeze' THEN stocks_stream._lake_step_freeze(c.table_name, c.day)
            WHEN 'export' THEN stocks_stream._lake_step_export(c.table_name, c.day, c.bucket, c.prefix)
            WHEN 'verify' THEN stocks_stream._lake_step_verify(c.table_name, c.day)
            ELSE stocks_stream._lake_step_drop(c.table_name, c.day) END;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, errstate = RETURNED_SQLSTATE;
        INSERT INTO stocks_stream.lake_days AS l (table_name, day, state, failed_step, reason, failed_at)
        VALUES (c.table_name, c.day, 'failed', CASE step WHEN 'freeze' THEN 'export' ELSE step END, msg, clock_timestamp())
        ON CONFLICT (table_name, day) DO UPDATE
           SET state = CASE WHEN l.state = 'dropped' THEN 'dropped' ELSE 'failed' END,
               failed_step = EXCLUDED.failed_step, reason = EXCLUDED.reason,
               failed_at = EXCLUDED.failed_at, updated_at = now();
        RAISE WARNING 'stocks_stream.tier_to_lake: % of % % failed, the day stays in Postgres: %', step, c.table_name, to_char(c.day, 'YYYY-MM-DD'), msg
            USING HINT = 'The next tier_to_lake() tries again; stocks_stream.lake_status shows the reason.';
        RETURN format('%s of %s %s failed (%s): %s', step, c.table_name, to_char(c.day, 'YYYY-MM-DD'), errstate, msg);
    END;
END;
$$;
COMMENT ON FUNCTION stocks_stream._lake_next_step IS
    'One step of tier_to_lake(): freeze, export, verify or drop the next silver day due; NULL when none is. Each call is meant to commit on its own.';

-- The procedure holds no SET clause and is SECURITY INVOKER: PostgreSQL
-- allows COMMIT only so.  It names nothing unqualified; the steps it calls
-- pin their search_path.
CREATE OR REPLACE PROCEDURE stocks_stream.tier_to_lake(max_steps integer DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    since pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    did pg_catalog.text;
    steps pg_catalog.int4 := 0;
BEGIN
    IF max_steps OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'stocks_stream.tier_to_lake: max_steps must be at least 1, or NULL for no limit'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        EXIT WHEN max_steps IS NOT NULL AND steps OPERATOR(pg_catalog.>=) max_steps;
        did := stocks_stream._lake_next_step(since);
        EXIT WHEN did IS NULL;
        steps := steps OPERATOR(pg_catalog.+) 1;
        RAISE NOTICE 'stocks_stream.tier_to_lake: %', did;
        COMMIT;
    END LOOP;
END;
$$;
COMMENT ON PROCEDURE stocks_stream.tier_to_lake IS
    'Tier every silver day past its table''s retention policy to the lake, one committed step at a time (freeze, export, verify, drop: docs/lake.md); at most max_steps steps. Safe to interrupt, to crash and to call again. Call it outside a transaction block.';

-- ---------------------------------------------------------------------------
-- Status
-- ---------------------------------------------------------------------------
CREATE OR REPLACE VIEW stocks_stream.lake_status AS
WITH parts AS (
    -- names looked up by joins, not by ::regclass: api.lake_days runs this
    -- for PostgREST's role, which has no USAGE on the schema
    SELECT pc.relname::text AS table_name, to_date(right(k.relname, 8), 'YYYYMMDD') AS day, k.reltuples
      FROM pg_namespace n
      JOIN pg_class pc ON pc.relnamespace = n.oid AND pc.relname IN ('quotes', 'trades')
      JOIN pg_inherits i ON i.inhparent = pc.oid
      JOIN pg_class k ON k.oid = i.inhrelid
     WHERE n.nspname = 'stocks_stream' AND k.relname ~ ('^' || pc.relname || '_[0-9]{8}$')),
objects AS (
    SELECT o.table_name, o.day, count(*) AS objects, sum(o.row_count)::bigint AS rows, sum(o.bytes)::bigint AS bytes,
           count(o.verified_at) AS verified, count(o.iceberg_snapshot_id) AS registered
      FROM stocks_stream.lake_objects o GROUP BY o.table_name, o.day),
days AS (
    SELECT table_name, day FROM parts
    UNION SELECT table_name, day FROM stocks_stream.lake_days
    UNION SELECT table_name, day FROM objects)
SELECT x.table_name, x.day,
       CASE WHEN p.day IS NULL THEN 'lake'
            WHEN d.state = 'failed' THEN 'failed'
            WHEN d.state IN ('frozen', 'exported', 'verified') THEN 'tiering'
            WHEN r.hot_days IS NOT NULL AND x.day <= (now() AT TIME ZONE 'UTC')::date - r.hot_days THEN 'due'
            ELSE 'hot' END AS status,
       p.day IS NOT NULL AS in_postgres,
       CASE WHEN p.reltuples >= 0 THEN p.reltuples::bigint END AS postgres_rows_estimate,
       d.state, d.round,
       coalesce(o.objects, 0) AS lake_objects, coalesce(o.rows, 0) AS lake_rows, coalesce(o.bytes, 0) AS lake_bytes,
       coalesce(o.verified, 0) AS verified_objects, coalesce(o.registered, 0) AS registered_objects,
       d.failed_step, d.reason, d.failed_at, d.updated_at
  FROM days x
  LEFT JOIN parts p ON p.table_name = x.table_name AND p.day = x.day
  LEFT JOIN stocks_stream.lake_days d ON d.table_name = x.table_name AND d.day = x.day
  LEFT JOIN objects o ON o.table_name = x.table_name AND o.day = x.day
  LEFT JOIN stocks_stream.lake_retention r ON r.table_name = x.table_name;
COMMENT ON VIEW stocks_stream.lake_status IS
    'Per silver table and UTC day: hot (in Postgres), due (past retention, not started), tiering, failed (still in Postgres, with the step and reason) or lake (in the lake only); the lake''s objects, rows and bytes, how many are verified and registered in Iceberg.';
COMMENT ON COLUMN stocks_stream.lake_status.status IS 'hot, due, tiering, failed or lake.';
COMMENT ON COLUMN stocks_stream.lake_status.postgres_rows_estimate IS 'Rows of the day''s partition by the planner''s estimate (pg_class.reltuples); NULL before the partition was analyzed.';
COMMENT ON COLUMN stocks_stream.lake_status.lake_rows IS 'Rows in the day''s objects, all rounds.';
COMMENT ON COLUMN stocks_stream.lake_status.reason IS 'Why the last step failed: a verification names the symbol and the counts.';

-- api.lake_days (PostgREST): the status without the failure texts or the
-- buckets, as api.pipeline_health shows no error text
CREATE OR REPLACE VIEW api.lake_days AS
SELECT s.table_name, s.day, s.status, s.in_postgres, s.lake_objects, s.lake_rows, s.lake_bytes,
       s.verified_objects, s.registered_objects, s.failed_step, s.failed_at
  FROM stocks_stream.lake_status s;
COMMENT ON VIEW api.lake_days IS 'Silver days per table: hot (in Postgres), due, tiering, failed (still in Postgres) or lake (in the lake only), with the lake''s objects, rows and bytes. Failure texts are not exposed.';
COMMENT ON COLUMN api.lake_days.table_name IS 'Silver table: quotes or trades.';
COMMENT ON COLUMN api.lake_days.day IS 'UTC day.';
COMMENT ON COLUMN api.lake_days.status IS 'hot (in Postgres), due (past retention, not started), tiering (still in Postgres), failed (still in Postgres; tiering is retried) or lake (in the lake only).';
COMMENT ON COLUMN api.lake_days.in_postgres IS 'Whether the day''s partition is in Postgres.';
COMMENT ON COLUMN api.lake_days.lake_objects IS 'Parquet objects of the day in the lake, all rounds.';
COMMENT ON COLUMN api.lake_days.lake_rows IS 'Rows in those objects.';
COMMENT ON COLUMN api.lake_days.lake_bytes IS 'Bytes of those objects.';
COMMENT ON COLUMN api.lake_days.verified_objects IS 'Objects read back from S3 and matched with Postgres.';
COMMENT ON COLUMN api.lake_days.registered_objects IS 'Objects registered in an Iceberg snapshot.';
COMMENT ON COLUMN api.lake_days.failed_step IS 'The tiering step that failed last (export, verify or drop); null when none did.';
COMMENT ON COLUMN api.lake_days.failed_at IS 'When it failed.';
