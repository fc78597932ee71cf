-- Exec
ALTER TABLE aggregate_sources
    ADD COLUMN source_ip_hash UInt64 DEFAULT cityHash64(source_ip);
