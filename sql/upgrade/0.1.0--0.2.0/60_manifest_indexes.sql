-- manifest_source_idx (topic, partition, first_offset) serves no query:
-- the workers and loaders find manifest rows by object_id, by (bucket,
-- object_key) or by pipeline, each with an index of its own.
DROP INDEX stocks_stream.manifest_source_idx;
