-- 0005_source_geo_known: where a source IP is and whose it is, besides its
-- DNS facts (0003): country and AS from MaxMind-format databases the
-- operator supplies (attribution.geoip_country_db, attribution.geoip_asn_db),
-- and the known source (built-in senders and attribution.known_sources) its
-- CIDR, confirmed PTR name or SPF include matches.
--
-- Same conventions as 0001_init. ClickHouse 18.16 has no ADD COLUMN IF NOT
-- EXISTS: one ALTER adds every column at once (one metadata change), so the
-- table has either none or all of them.
--
-- country: ISO 3166-1 alpha-2 code ("US"), "" when unknown; asn 0 and
-- as_org "" when unknown. spf_includes: the include/redirect domains on the
-- path through which the domain's SPF authorises the IP, outermost first
-- (e.g. ['_spf.example.com', 'amazonses.com']). known_source: the known
-- source's name ("Amazon SES"), "" for none; known_authorised 1 when the
-- operator marked it authorised: true.
ALTER TABLE {{.Local "source_attribution"}}{{.OnCluster}}
    ADD COLUMN country          String,
    ADD COLUMN asn              UInt32,
    ADD COLUMN as_org           String,
    ADD COLUMN spf_includes     Array(String),
    ADD COLUMN known_source     String,
    ADD COLUMN known_authorised UInt8;
{{.Redistributed "source_attribution"}}
