//! The normalized feed query and the canonical links built from it.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::snapshot::Format;
use crate::tlp::Tlp;

/// Path of the feed route.
pub const FEED_PATH: &str = "/feeds/indicators";

/// A validated feed request, after defaults and the key's scope are applied.
///
/// Two requests with equal `FeedQuery` values get byte-identical pages, which is what lets the
/// edge answer a default request with the publisher's stored page.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedQuery {
    /// Exact category, lower-cased.
    pub category: Option<String>,
    /// Minimum risk score, 0 to 100.
    pub min_risk_score: Option<f64>,
    /// Only rows updated strictly after this time; also admits revoked tombstones.
    pub since: Option<DateTime<Utc>>,
    /// Highest TLP returned.
    pub tlp: Tlp,
    /// Page number, from 1.
    pub page: u64,
    /// Rows per page.
    pub page_size: u64,
    /// Output format.
    pub format: Format,
}

impl FeedQuery {
    /// Returns the canonical relative link to `page` of this query pinned to `snapshot_id`.
    pub fn link(&self, snapshot_id: &str, page: u64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(category) = &self.category {
            query.append_pair("category", category);
        }
        if let Some(score) = self.min_risk_score {
            query.append_pair("minRiskScore", &score.to_string());
        }
        if let Some(since) = self.since {
            query.append_pair("since", &since.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
        query.append_pair("tlp", self.tlp.as_str());
        query.append_pair("page", &page.to_string());
        query.append_pair("pageSize", &self.page_size.to_string());
        query.append_pair("fmt", self.format.as_str());
        query.append_pair("snapshot", snapshot_id);
        format!("{FEED_PATH}?{}", query.finish())
    }

    /// Returns true when this query selects exactly the precomputed default pages.
    pub fn is_default_listing(&self, default_tlp: Tlp, default_page_size: u64) -> bool {
        self.category.is_none()
            && self.min_risk_score.is_none()
            && self.since.is_none()
            && self.tlp == default_tlp
            && self.page_size == default_page_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_escapes_values_and_pins_the_snapshot() {
        let query = FeedQuery {
            category: Some("a&b c".to_owned()),
            min_risk_score: Some(50.5),
            since: Some("2025-04-21T12:00:00Z".parse().unwrap()),
            tlp: Tlp::AmberStrict,
            page: 1,
            page_size: 100,
            format: Format::Csv,
        };
        assert_eq!(
            query.link("s1", 2),
            "/feeds/indicators?category=a%26b+c&minRiskScore=50.5&since=2025-04-21T12%3A00%3A00Z\
             &tlp=TLP%3AAMBER%2BSTRICT&page=2&pageSize=100&fmt=csv&snapshot=s1"
        );
    }
}
