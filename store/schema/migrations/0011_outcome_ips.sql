-- 0011_outcome_ips: aggregate_outcomes.source_ipsMap, the distinct source
-- IPs of each row as plain arrays beside the uniq sketch (source_ip_state):
-- source_ipsMap.ip_hash, the IPs' cityHash64 cut to 32 bits, and
-- source_ipsMap.records, the row's records from each. "How many sources"
-- reads uniqArray(source_ipsMap.ip_hash): arrays load as they are stored,
-- where a sketch is rebuilt value by value before it merges, which was
-- half of what the per-outcome panels took over all domains of the 100M
-- benchmark (docs/benchmarks.md).
--
-- A nested structure whose name ends in "Map" is what SummingMergeTree
-- merges by key, summing the other arrays (ClickHouse 18.16 and current
-- ones do so whatever the table's list of summed columns), so merged rows
-- keep the union of their IPs. The writer sends source_ipsMap.records
-- (one element per row of a small report: its records from the row's IP)
-- and the server fills source_ipsMap.ip_hash from source_ip (DEFAULT); the
-- INSERT ... SELECTs of large reports, retries and `dmarcd rollup rebuild`
-- send both, from sumMap over the records.
--
-- Parts written before this migration compute both from their row's one
-- source_ip when read (DEFAULT), so their source counts are too low until
-- `dmarcd rollup rebuild` rewrites them: RollupGaps (`dmarcd migrate`, the
-- daemon's log) names the months where the sketch counts more sources than
-- the arrays hold.
--
-- Same conventions as 0001_init: rendered with text/template (.Local, .Redistributed),
-- statements end with ";" at the end of a line, only what ClickHouse 18.16
-- has (no ADD COLUMN IF NOT EXISTS, store/schema/alter.go).

ALTER TABLE {{.Local "aggregate_outcomes"}}{{.OnCluster}}
    ADD COLUMN source_ipsMap.ip_hash Array(UInt32)
        DEFAULT if(source_ip = '', emptyArrayUInt32(), [toUInt32(cityHash64(source_ip))]),
    ADD COLUMN source_ipsMap.records Array(UInt64)
        DEFAULT if(source_ip = '', emptyArrayUInt64(), [toUInt64(1)]);
{{.Redistributed "aggregate_outcomes"}}
