-- stocks_stream: the lake's Iceberg commit records (docs/lake.md, "Iceberg
-- tables").  scripts/lake-commit registers Parquet objects in the Iceberg
-- tables of the catalog in stocks_stream_lake; these functions tie each
-- snapshot it commits to the objects it registered, exactly once:
--
--   1. lake_claim() records a batch of objects no batch holds yet, in a
--      transaction of its own, before anything is written to S3;
--   2. the commit adds the batch's objects as one snapshot whose summary
--      property stocks-stream.commit-id is the batch's commit_id;
--   3. lake_mark_commit() records that snapshot's id (and, for silver, sets
--      lake_objects.iceberg_snapshot_id).
--
-- A batch claimed and not marked (a crash between 1 and 3) is looked up in
-- its table's snapshots by that property on the next run: found, it is
-- marked; not found, its objects are added again.  An object is in one
-- batch at most (the key of lake_commit_objects).

-- Claim the next batch of at most max_objects objects for the Iceberg table
-- table_namespace.table_name: bronze.<pipeline> takes the pipeline's Parquet
-- objects (its manifest rows), silver.quotes and silver.trades take the
-- verified objects of stocks_stream.lake_objects.  Returns the batch's
-- commit_id, or NULL when no object waits.  Refuses while the table has a
-- batch not yet marked: that one is finished first.
CREATE OR REPLACE FUNCTION stocks_stream.lake_claim(table_namespace text, table_name text,
                                                    max_objects integer DEFAULT 1000)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ns text := lake_claim.table_namespace;
    tbl text := lake_claim.table_name;
    pending bigint;
    claimed bigint;
BEGIN
    IF max_objects IS NULL OR max_objects < 1 THEN
        RAISE EXCEPTION 'stocks_stream.lake_claim: max_objects must be at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ns IS NOT DISTINCT FROM 'bronze' THEN
        IF NOT EXISTS (SELECT FROM stocks_stream.pipelines p WHERE p.name = tbl) THEN
            RAISE EXCEPTION 'stocks_stream.lake_claim: no pipeline named "%"', tbl
                USING ERRCODE = 'undefined_object', HINT = 'A bronze table is named after its pipeline.';
        END IF;
    ELSIF ns IS NOT DISTINCT FROM 'silver' THEN
        IF tbl IS NULL OR tbl NOT IN ('quotes', 'trades') THEN
            RAISE EXCEPTION 'stocks_stream.lake_claim: no silver table "%"', tbl
                USING ERRCODE = 'invalid_parameter_value', HINT = 'The silver tables are quotes and trades.';
        END IF;
    ELSE
        RAISE EXCEPTION 'stocks_stream.lake_claim: no namespace "%"', ns
            USING ERRCODE = 'invalid_parameter_value', HINT = 'The namespaces are bronze and silver.';
    END IF;

    SELECT c.commit_id INTO pending FROM stocks_stream.lake_commits c
     WHERE c.table_namespace = ns AND c.table_name = tbl AND c.snapshot_id IS NULL
     ORDER BY c.commit_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'stocks_stream.lake_claim: commit % of %.% is not finished', pending, ns, tbl
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'scripts/lake-commit finishes it before it claims more.';
    END IF;

    -- the batch's row first; dropped again when no object waits
    INSERT INTO stocks_stream.lake_commits (table_namespace, table_name) VALUES (ns, tbl)
    RETURNING commit_id INTO claimed;
    IF ns = 'bronze' THEN
        INSERT INTO stocks_stream.lake_commit_objects (bucket, object_key, commit_id)
        SELECT m.bucket, m.object_key, claimed FROM stocks_stream.manifest m
         WHERE m.pipeline = tbl AND m.object_key LIKE '%.parquet'
           AND NOT EXISTS (SELECT FROM stocks_stream.lake_commit_objects o
                            WHERE o.bucket = m.bucket AND o.object_key = m.object_key)
         ORDER BY m.object_id LIMIT max_objects;
    ELSE
        INSERT INTO stocks_stream.lake_commit_objects (bucket, object_key, commit_id)
        SELECT l.bucket, l.object_key, claimed FROM stocks_stream.lake_objects l
         WHERE l.table_name = tbl AND l.verified_at IS NOT NULL AND l.iceberg_snapshot_id IS NULL
           AND NOT EXISTS (SELECT FROM stocks_stream.lake_commit_objects o
                            WHERE o.bucket = l.bucket AND o.object_key = l.object_key)
         ORDER BY l.lake_object_id LIMIT max_objects;
    END IF;
    IF NOT FOUND THEN
        DELETE FROM stocks_stream.lake_commits lc WHERE lc.commit_id = claimed;
        RETURN NULL;
    END IF;
    RETURN claimed;
END;
$$;
COMMENT ON FUNCTION stocks_stream.lake_claim(text, text, integer) IS
    'Claim the next batch of objects for an Iceberg table (bronze.<pipeline>, silver.quotes, silver.trades); returns its commit_id, NULL when none waits (scripts/lake-commit).';

-- Record that snapshot_id committed batch commit_id.  Marking a batch again
-- with the same snapshot does nothing; with another one it is an error.
CREATE OR REPLACE FUNCTION stocks_stream.lake_mark_commit(commit_id bigint, snapshot_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c stocks_stream.lake_commits;
BEGIN
    SELECT * INTO c FROM stocks_stream.lake_commits lc WHERE lc.commit_id = lake_mark_commit.commit_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stocks_stream.lake_mark_commit: no lake commit %', lake_mark_commit.commit_id
            USING ERRCODE = 'undefined_object';
    END IF;
    IF lake_mark_commit.snapshot_id IS NULL THEN
        RAISE EXCEPTION 'stocks_stream.lake_mark_commit: the snapshot id must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF c.snapshot_id IS NOT NULL THEN
        IF c.snapshot_id = lake_mark_commit.snapshot_id THEN
            RETURN;
        END IF;
        RAISE EXCEPTION 'stocks_stream.lake_mark_commit: lake commit % is snapshot %, not %',
            c.commit_id, c.snapshot_id, lake_mark_commit.snapshot_id
            USING ERRCODE = 'unique_violation';
    END IF;
    UPDATE stocks_stream.lake_commits lc SET snapshot_id = lake_mark_commit.snapshot_id, committed_at = now()
     WHERE lc.commit_id = c.commit_id;
    IF c.table_namespace = 'silver' THEN
        UPDATE stocks_stream.lake_objects l SET iceberg_snapshot_id = lake_mark_commit.snapshot_id
          FROM stocks_stream.lake_commit_objects o
         WHERE o.commit_id = c.commit_id AND l.bucket = o.bucket AND l.object_key = o.object_key;
    END IF;
END;
$$;
COMMENT ON FUNCTION stocks_stream.lake_mark_commit(bigint, bigint) IS
    'Record the Iceberg snapshot that committed a lake commit (and set lake_objects.iceberg_snapshot_id of its silver objects).';
