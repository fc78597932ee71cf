-- 0014_input_attempts: the inputs that sources have in hand, so that an
-- input that kills the process (out of memory before it is moved) is known
-- as such after the restart instead of being fetched again forever
-- (store/attempts.go, docs/schema.md).
--
-- One row per event of an attempt at an input: 'begin' when a source is
-- about to process it, 'alive' every few seconds while it still holds it,
-- 'end' when the attempt ended (committed, set aside, or failed with an
-- error). An attempt whose 'end' never came and whose newest row is old was
-- in hand when its process died.
--
-- Sorted, and in cluster mode sharded (sipHash64(source, input_id)), by the
-- input: the rows of one input are read with one range of one shard.
--
-- Same conventions as 0001_init: rendered with text/template (.Local,
-- .Engine, .Distributed), statements end with ";" at the end of a line, only types and
-- features ClickHouse 18.16 has (no TTL, no LowCardinality: Prune drops
-- old months), times DateTime('UTC').
CREATE TABLE IF NOT EXISTS {{.Local "input_attempts"}}{{.OnCluster}} (
    time      DateTime('UTC'),
    source    String,
    input_id  String,
    instance  String,
    attempt   String,
    event     String
) ENGINE = {{.Engine "input_attempts" "MergeTree"}}
PARTITION BY toYYYYMM(time)
ORDER BY (source, input_id);
{{.Distributed "input_attempts"}}
