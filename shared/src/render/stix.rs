//! STIX 2.1 bundles: the producer identity, the feed's property extension, one
//! `indicator` per row and the OASIS TLP 2.0 marking definitions the rows use.
//!
//! Phone numbers and cryptocurrency wallets have no STIX 2.1 observable, and OASIS's
//! cti-stix-common-objects repository publishes no extension for either (checked
//! against its `objects/extension-definition` folder). Their patterns therefore use the
//! custom observable types `phone-number` and `cryptocurrency-wallet` with a `value`
//! property, the names OpenCTI gives the same observables, so the common consumers
//! recognise them.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::{Uuid, Variant};

use super::{published_risk_score, Pagination, SnapshotInfo};
use crate::{Indicator, IndicatorType, Status, Tlp};

/// Id of the `identity` object of the feed's producer, the `created_by_ref` of every indicator.
pub const PRODUCER_IDENTITY_ID: &str = "identity--9b93b0ab-98f1-4026-8ee0-547093a2f8f8";

/// Id of the feed's property extension, which carries risk score, category, tags and last-seen time.
pub const EXTENSION_DEFINITION_ID: &str =
    "extension-definition--5dce74d1-b7a0-4c92-80d0-8c69fd222ea7";

/// Id of the OASIS extension definition of TLP 2.0 that the marking definitions use.
pub const TLP_2_0_EXTENSION_DEFINITION_ID: &str =
    "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

/// Namespace of the ids derived from indicator ids that are not UUIDv4 (never the SCO namespace).
const INDICATOR_NAMESPACE: Uuid = uuid::uuid!("ef67168e-cd5a-40cd-9bc4-280b0d194999");

/// Namespace of the bundle ids derived from a snapshot id and a page link.
const BUNDLE_NAMESPACE: Uuid = uuid::uuid!("6cc7726b-c063-453f-9ef7-7c6322ae9656");

/// Creation time of the producer identity and of the extension definition.
const PRODUCER_OBJECTS_CREATED: &str = "2025-04-21T00:00:00.000Z";

/// Creation time of the OASIS TLP 2.0 marking definitions, as published.
const TLP_MARKINGS_CREATED: &str = "2022-10-01T00:00:00.000Z";

/// Normative definition of the feed's property extension. STIX 2.1 accepts plain text here.
const EXTENSION_SCHEMA: &str = "Property extension of indicator objects. Properties: \
    risk_score (number from 0 to 100, absent when the score is unknown); \
    category (string, such as phishing or crypto_drainer); \
    tags (list of strings, absent when the indicator has none); \
    last_seen (timestamp, the last time the observable was seen).";

/// Returns the id of the OASIS TLP 2.0 marking definition of `tlp`, or `None` for `TLP:RED`,
/// which is never published.
pub fn marking_definition_id(tlp: Tlp) -> Option<&'static str> {
    match tlp {
        Tlp::Clear => Some("marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"),
        Tlp::Green => Some("marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"),
        Tlp::Amber => Some("marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"),
        Tlp::AmberStrict => Some("marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"),
        Tlp::Red => None,
    }
}

/// Returns the STIX id of an indicator, stable for the life of the indicator.
///
/// A canonical (lower-case, hyphenated) UUIDv4 is kept: `indicator--<indicator_id>`.
/// Any other id is hashed with SHA-1 in the producer's own namespace, as UUIDv5 does,
/// but the result carries version 4. STIX 2.1 recommends UUIDv4 for SDOs, and
/// `stix2_validator --strict` (3.3) rejects a UUIDv5 indicator id (check 103).
pub fn indicator_object_id(indicator_id: &str) -> String {
    let uuid = match Uuid::parse_str(indicator_id) {
        Ok(uuid) if is_canonical_v4(&uuid, indicator_id) => uuid,
        _ => name_based_v4(&INDICATOR_NAMESPACE, indicator_id),
    };
    format!("indicator--{}", uuid.hyphenated())
}

/// Returns the bundle id of a page (from the snapshot id and the page's link) or of a
/// download (from the snapshot id alone), so re-rendering gives the same id.
pub fn bundle_id(snapshot: &SnapshotInfo, pagination: Option<&Pagination>) -> String {
    let name = match pagination {
        Some(pagination) => format!("{}\n{}", snapshot.id, pagination.self_link),
        None => format!("{}\ndownload", snapshot.id),
    };
    format!(
        "bundle--{}",
        name_based_v4(&BUNDLE_NAMESPACE, &name).hyphenated()
    )
}

/// Returns the STIX pattern that matches `value` as an observable of `indicator_type`.
pub fn pattern(indicator_type: IndicatorType, value: &str) -> String {
    let object_path = match indicator_type {
        IndicatorType::Url => "url:value",
        IndicatorType::Domain => "domain-name:value",
        IndicatorType::Ipv4 => "ipv4-addr:value",
        IndicatorType::Ipv6 => "ipv6-addr:value",
        IndicatorType::Email => "email-addr:value",
        IndicatorType::Phone => "phone-number:value",
        IndicatorType::CryptoWallet => "cryptocurrency-wallet:value",
        IndicatorType::Md5 => "file:hashes.MD5",
        IndicatorType::Sha1 => "file:hashes.'SHA-1'",
        IndicatorType::Sha256 => "file:hashes.'SHA-256'",
    };
    format!("[{object_path} = '{}']", escape_pattern_literal(value))
}

/// Escapes a STIX pattern string literal: `\` becomes `\\` first, then `'` becomes `\'`.
pub fn escape_pattern_literal(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

fn is_canonical_v4(uuid: &Uuid, text: &str) -> bool {
    uuid.get_version_num() == 4
        && uuid.get_variant() == Variant::RFC4122
        && uuid.hyphenated().to_string() == text
}

/// Derives a UUID from `name` with SHA-1 in `namespace`, labelled version 4.
fn name_based_v4(namespace: &Uuid, name: &str) -> Uuid {
    let digest = Uuid::new_v5(namespace, name.as_bytes());
    uuid::Builder::from_random_bytes(digest.into_bytes()).into_uuid()
}

/// Formats a STIX timestamp: UTC with `Z` and at least millisecond precision, more
/// digits only when the time has them.
fn stix_timestamp(timestamp: DateTime<Utc>) -> String {
    let nanos = timestamp.timestamp_subsec_nanos();
    let layout = if nanos % 1_000_000 == 0 {
        "%Y-%m-%dT%H:%M:%S%.3fZ"
    } else if nanos % 1_000 == 0 {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%S%.9fZ"
    };
    timestamp.format(layout).to_string()
}

#[derive(Serialize)]
struct Identity {
    #[serde(rename = "type")]
    object_type: &'static str,
    spec_version: &'static str,
    id: &'static str,
    created: &'static str,
    modified: &'static str,
    name: &'static str,
    description: &'static str,
    identity_class: &'static str,
}

const PRODUCER_IDENTITY: Identity = Identity {
    object_type: "identity",
    spec_version: "2.1",
    id: PRODUCER_IDENTITY_ID,
    created: PRODUCER_OBJECTS_CREATED,
    modified: PRODUCER_OBJECTS_CREATED,
    name: "Partner Feed",
    description:
        "Publisher of the partner indicator feed of a scam- and fraud-intelligence platform.",
    identity_class: "system",
};

#[derive(Serialize)]
struct ExtensionDefinition {
    #[serde(rename = "type")]
    object_type: &'static str,
    spec_version: &'static str,
    id: &'static str,
    created_by_ref: &'static str,
    created: &'static str,
    modified: &'static str,
    name: &'static str,
    description: &'static str,
    schema: &'static str,
    version: &'static str,
    extension_types: [&'static str; 1],
}

const FEED_EXTENSION_DEFINITION: ExtensionDefinition = ExtensionDefinition {
    object_type: "extension-definition",
    spec_version: "2.1",
    id: EXTENSION_DEFINITION_ID,
    created_by_ref: PRODUCER_IDENTITY_ID,
    created: PRODUCER_OBJECTS_CREATED,
    modified: PRODUCER_OBJECTS_CREATED,
    name: "Partner Feed indicator properties",
    description: "Properties of a Partner Feed indicator that STIX 2.1 has no property for: \
        risk score, category, tags and last-seen time.",
    schema: EXTENSION_SCHEMA,
    version: "1.0.0",
    extension_types: ["property-extension"],
};

/// An OASIS TLP 2.0 marking definition, field for field as OASIS publishes it.
#[derive(Serialize)]
struct MarkingDefinition {
    #[serde(rename = "type")]
    object_type: &'static str,
    spec_version: &'static str,
    id: &'static str,
    created: &'static str,
    name: &'static str,
    extensions: MarkingExtensions,
}

#[derive(Serialize)]
struct MarkingExtensions {
    #[serde(rename = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d")]
    tlp_2_0: TlpExtension,
}

#[derive(Serialize)]
struct TlpExtension {
    extension_type: &'static str,
    tlp_2_0: &'static str,
}

fn marking_definition(tlp: Tlp) -> Option<MarkingDefinition> {
    let level = match tlp {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber+strict",
        Tlp::Red => return None,
    };
    Some(MarkingDefinition {
        object_type: "marking-definition",
        spec_version: "2.1",
        id: marking_definition_id(tlp)?,
        created: TLP_MARKINGS_CREATED,
        name: tlp.as_str(),
        extensions: MarkingExtensions {
            tlp_2_0: TlpExtension {
                extension_type: "property-extension",
                tlp_2_0: level,
            },
        },
    })
}

#[derive(Serialize)]
struct StixIndicator<'a> {
    #[serde(rename = "type")]
    object_type: &'static str,
    spec_version: &'static str,
    id: String,
    created_by_ref: &'static str,
    created: String,
    modified: String,
    name: &'a str,
    description: Cow<'a, str>,
    indicator_types: [&'static str; 1],
    pattern: String,
    pattern_type: &'static str,
    pattern_version: &'static str,
    valid_from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<i32>,
    #[serde(skip_serializing_if = "is_false")]
    revoked: bool,
    object_marking_refs: [&'static str; 1],
    extensions: IndicatorExtensions<'a>,
}

fn is_false(value: &bool) -> bool {
    !value
}

#[derive(Serialize)]
struct IndicatorExtensions<'a> {
    #[serde(rename = "extension-definition--5dce74d1-b7a0-4c92-80d0-8c69fd222ea7")]
    feed: FeedProperties<'a>,
}

#[derive(Serialize)]
struct FeedProperties<'a> {
    extension_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_score: Option<f64>,
    category: &'a str,
    // STIX 2.1 forbids empty lists, so an indicator without tags has no `tags`.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    last_seen: String,
}

impl<'a> StixIndicator<'a> {
    fn new(indicator: &'a Indicator, marking_ref: &'static str) -> Self {
        // STIX requires modified >= created; a row edited before its recorded creation
        // time (clock skew on import) still gets a valid object.
        let modified = indicator.updated_at.max(indicator.created_at);
        let description = match &indicator.description {
            Some(description) => Cow::Borrowed(description.as_str()),
            None => Cow::Owned(format!(
                "{} indicator, category {}",
                indicator.indicator_type, indicator.category
            )),
        };
        Self {
            object_type: "indicator",
            spec_version: "2.1",
            id: indicator_object_id(&indicator.id),
            created_by_ref: PRODUCER_IDENTITY_ID,
            created: stix_timestamp(indicator.created_at),
            modified: stix_timestamp(modified),
            name: &indicator.value,
            description,
            indicator_types: ["malicious-activity"],
            pattern: pattern(indicator.indicator_type, &indicator.value),
            pattern_type: "stix",
            pattern_version: "2.1",
            valid_from: stix_timestamp(indicator.first_seen),
            confidence: indicator.confidence,
            revoked: indicator.status == Status::Revoked,
            object_marking_refs: [marking_ref],
            extensions: IndicatorExtensions {
                feed: FeedProperties {
                    extension_type: "property-extension",
                    risk_score: published_risk_score(indicator),
                    category: &indicator.category,
                    tags: &indicator.tags,
                    last_seen: stix_timestamp(indicator.last_seen),
                },
            },
        }
    }
}

/// Streaming writer of a bundle. Indicators go out as they are pushed; the marking
/// definitions they use follow them, because which ones are used is known only at the end.
pub(super) struct StixWriter<W: Write> {
    out: W,
    used_tlps: BTreeSet<Tlp>,
}

impl<W: Write> StixWriter<W> {
    pub(super) fn new(
        mut out: W,
        snapshot: &SnapshotInfo,
        pagination: Option<&Pagination>,
    ) -> io::Result<Self> {
        out.write_all(b"{\"type\":\"bundle\",\"id\":")?;
        serde_json::to_writer(&mut out, &bundle_id(snapshot, pagination))?;
        out.write_all(b",\"objects\":[")?;
        serde_json::to_writer(&mut out, &PRODUCER_IDENTITY)?;
        out.write_all(b",")?;
        serde_json::to_writer(&mut out, &FEED_EXTENSION_DEFINITION)?;
        Ok(Self {
            out,
            used_tlps: BTreeSet::new(),
        })
    }

    pub(super) fn push(&mut self, indicator: &Indicator) -> io::Result<()> {
        let marking_ref = marking_definition_id(indicator.tlp).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("indicator {} has no publishable TLP marking", indicator.id),
            )
        })?;
        self.out.write_all(b",")?;
        serde_json::to_writer(&mut self.out, &StixIndicator::new(indicator, marking_ref))?;
        self.used_tlps.insert(indicator.tlp);
        Ok(())
    }

    pub(super) fn finish(mut self) -> io::Result<W> {
        for marking in self
            .used_tlps
            .iter()
            .filter_map(|&tlp| marking_definition(tlp))
        {
            self.out.write_all(b",")?;
            serde_json::to_writer(&mut self.out, &marking)?;
        }
        self.out.write_all(b"]}")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::test_rows::*;
    use super::super::{render_page, PageWriter};
    use super::*;
    use crate::snapshot::Format;

    fn bundle(rows: &[Indicator]) -> Value {
        let bytes = render_page(Format::Stix, rows, &snapshot(), &first_of_two_pages());
        serde_json::from_slice(&bytes).expect("the bundle is valid JSON")
    }

    fn objects_of_type<'v>(bundle: &'v Value, object_type: &str) -> Vec<&'v Value> {
        bundle["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|object| object["type"] == object_type)
            .collect()
    }

    #[test]
    fn escaping_doubles_backslashes_before_quoting_quotes() {
        assert_eq!(escape_pattern_literal("plain"), "plain");
        assert_eq!(escape_pattern_literal("o'brien"), "o\\'brien");
        assert_eq!(escape_pattern_literal("a\\b"), "a\\\\b");
        assert_eq!(escape_pattern_literal("\\'"), "\\\\\\'");
        assert_eq!(escape_pattern_literal("http://x/')"), "http://x/\\')");
    }

    #[test]
    fn patterns_use_the_standard_observable_of_each_type() {
        let cases = [
            (IndicatorType::Url, "[url:value = 'v']"),
            (IndicatorType::Domain, "[domain-name:value = 'v']"),
            (IndicatorType::Ipv4, "[ipv4-addr:value = 'v']"),
            (IndicatorType::Ipv6, "[ipv6-addr:value = 'v']"),
            (IndicatorType::Email, "[email-addr:value = 'v']"),
            (IndicatorType::Phone, "[phone-number:value = 'v']"),
            (
                IndicatorType::CryptoWallet,
                "[cryptocurrency-wallet:value = 'v']",
            ),
            (IndicatorType::Md5, "[file:hashes.MD5 = 'v']"),
            (IndicatorType::Sha1, "[file:hashes.'SHA-1' = 'v']"),
            (IndicatorType::Sha256, "[file:hashes.'SHA-256' = 'v']"),
        ];
        for (indicator_type, expected) in cases {
            assert_eq!(pattern(indicator_type, "v"), expected);
        }
    }

    #[test]
    fn indicator_id_keeps_canonical_uuid_v4() {
        assert_eq!(
            indicator_object_id("3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b"),
            "indicator--3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b"
        );
    }

    #[test]
    fn indicator_id_derives_v4_for_other_ids() {
        for id in [
            "legacy-17",
            // UUIDv1 and UUIDv5: valid UUIDs, but not version 4.
            "c232ab00-9414-11ec-b3c8-9f6bdeced846",
            "886313e1-3b8a-5372-9b90-0c9aee199e5d",
            // A UUIDv4 in upper case, which is not the canonical text of the id.
            "3F2B8A6E-1C4D-4E5F-8A9B-0C1D2E3F4A5B",
        ] {
            let object_id = indicator_object_id(id);
            let uuid = Uuid::parse_str(object_id.strip_prefix("indicator--").unwrap()).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(uuid.get_variant(), Variant::RFC4122, "{id}");
            assert_eq!(object_id, indicator_object_id(id), "{id}");
            assert_ne!(
                uuid,
                Uuid::new_v5(&Uuid::NAMESPACE_OID, id.as_bytes()),
                "{id}"
            );
        }
        assert_ne!(
            indicator_object_id("legacy-17"),
            indicator_object_id("legacy-18")
        );
    }

    #[test]
    fn derived_indicator_id_is_pinned() {
        // A partner keeps these ids to match a later revocation, so they must never change.
        assert_eq!(
            indicator_object_id("legacy-17"),
            "indicator--9f6796a7-838c-4600-a2ba-da7c2a2822f0"
        );
    }

    #[test]
    fn bundle_id_depends_on_snapshot_and_page_link() {
        let snapshot = snapshot();
        let first = first_of_two_pages();
        let mut second = first_of_two_pages();
        second.self_link = "/feeds/indicators?page=2&pageSize=2".to_owned();

        let first_id = bundle_id(&snapshot, Some(&first));
        assert_eq!(first_id, bundle_id(&snapshot, Some(&first)));
        assert_ne!(first_id, bundle_id(&snapshot, Some(&second)));
        assert_ne!(first_id, bundle_id(&snapshot, None));
        let uuid = Uuid::parse_str(first_id.strip_prefix("bundle--").unwrap()).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
    }

    #[test]
    fn timestamps_have_at_least_milliseconds() {
        assert_eq!(
            stix_timestamp(at("2025-04-21T12:35:06Z")),
            "2025-04-21T12:35:06.000Z"
        );
        assert_eq!(
            stix_timestamp(at("2025-04-21T12:35:06.123456Z")),
            "2025-04-21T12:35:06.123456Z"
        );
        assert_eq!(
            stix_timestamp(at("2025-04-21T12:35:06.000000001Z")),
            "2025-04-21T12:35:06.000000001Z"
        );
    }

    #[test]
    fn indicator_carries_row_fields() {
        let row = indicator(
            "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
            IndicatorType::Url,
            "http://a.example/",
        );

        let bundle = bundle(&[row]);

        let indicators = objects_of_type(&bundle, "indicator");
        assert_eq!(indicators.len(), 1);
        let object = indicators[0];
        assert_eq!(
            object["id"],
            "indicator--3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b"
        );
        assert_eq!(object["created"], "2025-04-01T08:05:00.000Z");
        assert_eq!(object["modified"], "2025-04-21T12:35:06.000Z");
        assert_eq!(object["valid_from"], "2025-04-01T08:00:00.000Z");
        assert_eq!(object["confidence"], 80);
        assert_eq!(object["created_by_ref"], PRODUCER_IDENTITY_ID);
        assert_eq!(object["pattern"], "[url:value = 'http://a.example/']");
        assert_eq!(object.get("revoked"), None);

        assert_eq!(
            object["object_marking_refs"],
            json!(["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"])
        );
        assert_eq!(
            object["extensions"][EXTENSION_DEFINITION_ID],
            json!({
                "extension_type": "property-extension",
                "risk_score": 87.5,
                "category": "phishing",
                "tags": ["bank", "sms"],
                "last_seen": "2025-04-20T09:30:00.250Z"
            })
        );
    }

    #[test]
    fn revoked_row_omits_unknown_fields() {
        let mut row = indicator("legacy-1", IndicatorType::Phone, "+44 20 7946 0958");
        row.status = Status::Revoked;
        row.risk_score = None;
        row.confidence = None;
        row.description = None;
        row.tags.clear();
        let bundle = bundle(&[row]);
        let object = objects_of_type(&bundle, "indicator")[0];
        assert_eq!(object["revoked"], true);
        assert_eq!(object.get("confidence"), None);
        assert_eq!(object["description"], "phone indicator, category phishing");
        let extension = &object["extensions"][EXTENSION_DEFINITION_ID];
        assert_eq!(extension.get("risk_score"), None);
        assert_eq!(extension.get("tags"), None);
    }

    #[test]
    fn modified_is_never_before_created() {
        let mut row = indicator("a", IndicatorType::Domain, "a.example");
        row.created_at = at("2025-04-22T00:00:00Z");
        row.updated_at = at("2025-04-21T00:00:00Z");
        let bundle = bundle(&[row]);
        let object = objects_of_type(&bundle, "indicator")[0];
        assert_eq!(object["created"], "2025-04-22T00:00:00.000Z");
        assert_eq!(object["modified"], "2025-04-22T00:00:00.000Z");
    }

    #[test]
    fn bundle_ends_with_used_markings_only() {
        let mut green = indicator("a", IndicatorType::Domain, "a.example");
        green.tlp = Tlp::Green;
        let mut clear = indicator("b", IndicatorType::Domain, "b.example");
        clear.tlp = Tlp::Clear;
        let second_green = {
            let mut row = indicator("c", IndicatorType::Domain, "c.example");
            row.tlp = Tlp::Green;
            row
        };
        let bundle = bundle(&[green, clear, second_green]);

        let types: Vec<&str> = bundle["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|object| object["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "identity",
                "extension-definition",
                "indicator",
                "indicator",
                "indicator",
                "marking-definition",
                "marking-definition"
            ]
        );
        let markings = objects_of_type(&bundle, "marking-definition");
        assert_eq!(markings[0]["name"], "TLP:CLEAR");
        assert_eq!(markings[1]["name"], "TLP:GREEN");
    }

    #[test]
    fn marking_definitions_match_the_oasis_publication() {
        let expected = [
            (
                Tlp::Clear,
                "94868c89-83c2-464b-929b-a1a8aa3c8487",
                "TLP:CLEAR",
                "clear",
            ),
            (
                Tlp::Green,
                "bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
                "TLP:GREEN",
                "green",
            ),
            (
                Tlp::Amber,
                "55d920b0-5e8b-4f79-9ee9-91f868d9b421",
                "TLP:AMBER",
                "amber",
            ),
            (
                Tlp::AmberStrict,
                "939a9414-2ddd-4d32-a0cd-375ea402b003",
                "TLP:AMBER+STRICT",
                "amber+strict",
            ),
        ];
        for (tlp, uuid, name, level) in expected {
            let marking = serde_json::to_value(marking_definition(tlp).unwrap()).unwrap();
            assert_eq!(
                marking,
                json!({
                    "type": "marking-definition",
                    "spec_version": "2.1",
                    "id": format!("marking-definition--{uuid}"),
                    "created": "2022-10-01T00:00:00.000Z",
                    "name": name,
                    "extensions": {
                        TLP_2_0_EXTENSION_DEFINITION_ID: {
                            "extension_type": "property-extension",
                            "tlp_2_0": level
                        }
                    }
                })
            );
        }
        assert!(marking_definition(Tlp::Red).is_none());
    }

    #[test]
    fn extension_key_matches_definition_id() {
        let value = serde_json::to_value(FEED_EXTENSION_DEFINITION).unwrap();
        assert_eq!(value["id"], EXTENSION_DEFINITION_ID);
        assert_eq!(value["created_by_ref"], PRODUCER_IDENTITY_ID);

        let row = indicator("a", IndicatorType::Domain, "a.example");
        let indicator = serde_json::to_value(StixIndicator::new(&row, "m")).unwrap();
        assert!(indicator["extensions"]
            .get(EXTENSION_DEFINITION_ID)
            .is_some());
    }

    #[test]
    fn empty_download_has_producer_objects() {
        let writer = PageWriter::new(Format::Stix, Vec::new(), &snapshot(), None).unwrap();
        let bundle: Value = serde_json::from_slice(&writer.finish().unwrap()).unwrap();
        assert_eq!(bundle["type"], "bundle");
        assert_eq!(bundle["id"], bundle_id(&snapshot(), None));
        assert_eq!(bundle["objects"].as_array().unwrap().len(), 2);
    }
}
