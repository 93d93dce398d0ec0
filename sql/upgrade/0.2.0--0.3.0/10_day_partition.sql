-- Loaders no longer queue behind each other: the lock that serialises the
-- creation of a daily partition was taken on every call, even when the
-- partitions existed, and held to the end of the caller's transaction, so a
-- real-time load waited for any long load_bronze() in another session.  It
-- is now taken only when a partition is missing.
CREATE OR REPLACE FUNCTION stocks_stream.ensure_day_partition(day date)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
    part text;
    missing boolean := false;
BEGIN
    IF day IS NULL THEN
        RAISE EXCEPTION 'day must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOREACH t IN ARRAY ARRAY['quotes', 'trades'] LOOP
        missing := missing OR to_regclass(format('stocks_stream.%I', t || '_' || to_char(day, 'YYYYMMDD'))) IS NULL;
    END LOOP;
    IF NOT missing THEN
        RETURN;
    END IF;
    -- serialise concurrent loaders creating the same partition
    PERFORM pg_advisory_xact_lock(hashtext('stocks_stream.ensure_day_partition'));
    FOREACH t IN ARRAY ARRAY['quotes', 'trades'] LOOP
        part := t || '_' || to_char(day, 'YYYYMMDD');
        IF to_regclass(format('stocks_stream.%I', part)) IS NULL THEN
            EXECUTE format('CREATE TABLE stocks_stream.%I PARTITION OF stocks_stream.%I FOR VALUES FROM (%L) TO (%L)',
                           part, t, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
            PERFORM stocks_stream._index_silver_partition(t, part);
        END IF;
    END LOOP;
END;
$$;
