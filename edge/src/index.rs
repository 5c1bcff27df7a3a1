//! The in-memory index of one snapshot: its indicators in publish order and the filters applied to them.
//!
//! Publish order is `updated_at` descending, then id. Because of that order, the rows matching
//! `since` form a prefix of any list of positions, found by binary search.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use partner_feed_shared::{Indicator, Status, Tlp};

/// Categories a selection covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CategorySelection {
    /// Every category.
    All,
    /// One category, lower-cased.
    One(String),
    /// Any of these lower-cased categories (a key restricted to them that gave no `category`).
    AnyOf(Vec<String>),
}

/// Filters a request applies to the index, before pagination.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Categories to keep.
    pub categories: CategorySelection,
    /// Minimum risk score; rows without a score are left out when it is set.
    pub min_risk_score: Option<f64>,
    /// Keep rows updated strictly after this time.
    pub since: Option<DateTime<Utc>>,
    /// Highest TLP kept.
    pub tlp: Tlp,
    /// Keep revoked rows too (only when `since` is given).
    pub include_revoked: bool,
}

/// Hashable form of a [`Selection`], used as a cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SelectionKey {
    categories: CategorySelection,
    min_risk_score_bits: Option<u64>,
    since_micros: Option<i64>,
    tlp: Tlp,
    include_revoked: bool,
}

impl Selection {
    /// Returns the cache key of this selection.
    pub fn key(&self) -> SelectionKey {
        let categories = match &self.categories {
            CategorySelection::AnyOf(names) => {
                let mut names = names.clone();
                names.sort();
                names.dedup();
                CategorySelection::AnyOf(names)
            }
            other => other.clone(),
        };
        SelectionKey {
            categories,
            min_risk_score_bits: self.min_risk_score.map(f64::to_bits),
            since_micros: self.since.map(|since| since.timestamp_micros()),
            tlp: self.tlp,
            include_revoked: self.include_revoked,
        }
    }
}

/// The indicators of a snapshot with the columns filters read, stored apart for fast scans.
#[derive(Debug, Default)]
pub struct SnapshotIndex {
    indicators: Vec<Indicator>,
    updated_micros: Vec<i64>,
    tlps: Vec<Tlp>,
    active: Vec<bool>,
    risk_scores: Vec<f64>,
    category_ids: Vec<u32>,
    category_names: HashMap<String, u32>,
    by_category: Vec<Vec<u32>>,
}

impl SnapshotIndex {
    /// Builds the index, sorting the rows into publish order when they are not in it already.
    pub fn new(mut indicators: Vec<Indicator>) -> SnapshotIndex {
        if !is_in_publish_order(&indicators) {
            tracing::warn!(
                indicators = indicators.len(),
                "index rows are not in publish order; sorting them"
            );
            indicators.sort_by(|a, b| {
                b.updated_at
                    .cmp(&a.updated_at)
                    .then_with(|| a.id.cmp(&b.id))
            });
        }
        let mut index = SnapshotIndex {
            updated_micros: Vec::with_capacity(indicators.len()),
            tlps: Vec::with_capacity(indicators.len()),
            active: Vec::with_capacity(indicators.len()),
            risk_scores: Vec::with_capacity(indicators.len()),
            category_ids: Vec::with_capacity(indicators.len()),
            ..SnapshotIndex::default()
        };
        for (position, indicator) in indicators.iter().enumerate() {
            index.push_columns(position as u32, indicator);
        }
        index.indicators = indicators;
        index
    }

    fn push_columns(&mut self, position: u32, indicator: &Indicator) {
        let category = indicator.category.to_lowercase();
        let next_id = self.category_names.len() as u32;
        let category_id = *self.category_names.entry(category).or_insert(next_id);
        if category_id == next_id {
            self.by_category.push(Vec::new());
        }
        self.by_category[category_id as usize].push(position);
        self.category_ids.push(category_id);
        self.updated_micros
            .push(indicator.updated_at.timestamp_micros());
        self.tlps.push(indicator.tlp);
        self.active.push(indicator.status == Status::Active);
        self.risk_scores
            .push(indicator.risk_score.unwrap_or(f64::NAN));
    }

    /// Returns the number of indicators.
    pub fn len(&self) -> usize {
        self.indicators.len()
    }

    /// Returns true when the index contains no indicator.
    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty()
    }

    /// Returns the indicator at a position returned by [`SnapshotIndex::select`].
    pub fn get(&self, position: u32) -> &Indicator {
        &self.indicators[position as usize]
    }

    /// Returns the positions of the matching indicators, in publish order.
    pub fn select(&self, selection: &Selection) -> Vec<u32> {
        match &selection.categories {
            CategorySelection::All => {
                let end = self.since_cut(0..self.len() as u32, selection.since);
                (0..end as u32)
                    .filter(|&position| self.matches(position, selection))
                    .collect()
            }
            CategorySelection::One(name) => match self.category_names.get(name) {
                Some(&id) => self.select_from(&self.by_category[id as usize], selection),
                None => Vec::new(),
            },
            CategorySelection::AnyOf(names) => {
                let mut allowed = vec![false; self.by_category.len()];
                for name in names {
                    if let Some(&id) = self.category_names.get(name) {
                        allowed[id as usize] = true;
                    }
                }
                let end = self.since_cut(0..self.len() as u32, selection.since);
                (0..end as u32)
                    .filter(|&position| allowed[self.category_ids[position as usize] as usize])
                    .filter(|&position| self.matches(position, selection))
                    .collect()
            }
        }
    }

    fn select_from(&self, positions: &[u32], selection: &Selection) -> Vec<u32> {
        let end = match selection.since {
            Some(since) => {
                let since = since.timestamp_micros();
                positions
                    .partition_point(|&position| self.updated_micros[position as usize] > since)
            }
            None => positions.len(),
        };
        positions[..end]
            .iter()
            .copied()
            .filter(|&position| self.matches(position, selection))
            .collect()
    }

    /// Returns the end of the prefix of `range` updated strictly after `since`.
    fn since_cut(&self, range: std::ops::Range<u32>, since: Option<DateTime<Utc>>) -> usize {
        match since {
            Some(since) => {
                let since = since.timestamp_micros();
                let column = &self.updated_micros[range.start as usize..range.end as usize];
                range.start as usize + column.partition_point(|&updated| updated > since)
            }
            None => range.end as usize,
        }
    }

    fn matches(&self, position: u32, selection: &Selection) -> bool {
        let position = position as usize;
        if self.tlps[position] > selection.tlp {
            return false;
        }
        if !self.active[position] && !selection.include_revoked {
            return false;
        }
        match selection.min_risk_score {
            Some(minimum) => self.risk_scores[position] >= minimum,
            None => true,
        }
    }
}

fn is_in_publish_order(indicators: &[Indicator]) -> bool {
    indicators.windows(2).all(|pair| {
        let (a, b) = (&pair[0], &pair[1]);
        a.updated_at > b.updated_at || (a.updated_at == b.updated_at && a.id <= b.id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use partner_feed_shared::IndicatorType;

    fn indicator(id: &str, minute: u32, category: &str, tlp: Tlp, score: Option<f64>) -> Indicator {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap();
        Indicator {
            id: id.to_owned(),
            indicator_type: IndicatorType::Domain,
            value: format!("{id}.example"),
            category: category.to_owned(),
            risk_score: score,
            confidence: None,
            tlp,
            tags: Vec::new(),
            description: None,
            first_seen: at,
            last_seen: at,
            created_at: at,
            updated_at: at,
            status: Status::Active,
        }
    }

    fn sample() -> SnapshotIndex {
        let mut revoked = indicator("e", 1, "phishing", Tlp::Clear, Some(90.0));
        revoked.status = Status::Revoked;
        SnapshotIndex::new(vec![
            indicator("a", 5, "Phishing", Tlp::Green, Some(80.0)),
            indicator("b", 4, "investment_scam", Tlp::Amber, None),
            indicator("c", 3, "phishing", Tlp::AmberStrict, Some(10.0)),
            indicator("d", 2, "crypto_drainer", Tlp::Clear, Some(50.0)),
            revoked,
        ])
    }

    fn ids(index: &SnapshotIndex, positions: &[u32]) -> Vec<String> {
        positions
            .iter()
            .map(|&position| index.get(position).id.clone())
            .collect()
    }

    fn selection(tlp: Tlp) -> Selection {
        Selection {
            categories: CategorySelection::All,
            min_risk_score: None,
            since: None,
            tlp,
            include_revoked: false,
        }
    }

    #[test]
    fn tlp_and_status_filter_in_publish_order() {
        let index = sample();
        assert_eq!(
            ids(&index, &index.select(&selection(Tlp::Amber))),
            ["a", "b", "d"]
        );
        assert_eq!(ids(&index, &index.select(&selection(Tlp::Clear))), ["d"]);
    }

    #[test]
    fn category_matches_case_insensitively() {
        let index = sample();
        let mut query = selection(Tlp::AmberStrict);
        query.categories = CategorySelection::One("phishing".into());
        assert_eq!(ids(&index, &index.select(&query)), ["a", "c"]);
        query.categories =
            CategorySelection::AnyOf(vec!["crypto_drainer".into(), "phishing".into()]);
        assert_eq!(ids(&index, &index.select(&query)), ["a", "c", "d"]);
        query.categories = CategorySelection::One("unknown".into());
        assert!(index.select(&query).is_empty());
    }

    #[test]
    fn since_is_strict_and_admits_revoked_rows() {
        let index = sample();
        let mut query = selection(Tlp::Amber);
        query.since = Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 2, 0).unwrap());
        assert_eq!(ids(&index, &index.select(&query)), ["a", "b"]);
        query.since = Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 30).unwrap());
        query.include_revoked = true;
        query.categories = CategorySelection::One("phishing".into());
        assert_eq!(ids(&index, &index.select(&query)), ["a", "e"]);
    }

    #[test]
    fn min_risk_score_leaves_out_rows_without_score() {
        let index = sample();
        let mut query = selection(Tlp::Amber);
        query.min_risk_score = Some(50.0);
        assert_eq!(ids(&index, &index.select(&query)), ["a", "d"]);
        query.min_risk_score = Some(0.0);
        assert_eq!(ids(&index, &index.select(&query)), ["a", "d"]);
    }

    #[test]
    fn rows_out_of_order_are_sorted() {
        let index = SnapshotIndex::new(vec![
            indicator("b", 1, "x", Tlp::Clear, None),
            indicator("c", 2, "x", Tlp::Clear, None),
            indicator("a", 2, "x", Tlp::Clear, None),
        ]);
        assert_eq!(
            ids(&index, &index.select(&selection(Tlp::Clear))),
            ["a", "c", "b"]
        );
    }
}
