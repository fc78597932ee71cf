-- 0010_source_pair: aggregate_sources.source_pair, a hash of (source_ip,
-- header_from) stored with every row, so that the Sources dashboard's
-- "Sources by IP and From domain" table ranks (IP, From domain) pairs by a
-- UInt64 read from disk instead of hashing two strings of every row of the
-- time range (docs/benchmarks.md: about a second of the 3 s the panel took
-- over all domains of the 100M benchmark). The panel also splits the pairs
-- into buckets by the hash's low 16 bits (toUInt16(source_pair)) to find
-- the top pairs without grouping them all (dashboards/grafana/sources.json,
-- docs/dashboards.md).
--
-- DEFAULT: the server fills it on every insert that leaves it out, which is
-- every insert of the writer (the column lists of store/rollup.go) and of
-- `dmarcd rollup rebuild`. Parts written before this migration do not hold
-- it: ClickHouse computes it from the DEFAULT when it reads them (the
-- same values, more slowly) until a merge or `dmarcd rollup rebuild`
-- rewrites them.
--
-- Same conventions as 0001_init: rendered with text/template (.Local, .Redistributed),
-- statements end with ";" at the end of a line, only what ClickHouse 18.16
-- has (no ADD COLUMN IF NOT EXISTS: an ADD COLUMN that finds its column is
-- an earlier run's, store/schema/alter.go).

ALTER TABLE {{.Local "aggregate_sources"}}{{.OnCluster}}
    ADD COLUMN source_pair UInt64 DEFAULT cityHash64(source_ip, header_from);
{{.Redistributed "aggregate_sources"}}
