-- Exec
ALTER TABLE aggregate_sources
    ADD COLUMN source_pair UInt64 DEFAULT cityHash64(source_ip, header_from);
