//! Matching one batch of imported rows against the stored rows: what to insert, update or leave.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::record::IndicatorRecord;
use super::{ImportCounts, Rejection};
use crate::indicator::{Indicator, IndicatorType};

/// Identity of an indicator for the upsert: `(indicator_type, value)`.
type IndicatorKey = (IndicatorType, String);

/// The writes one batch needs and how each of its rows was counted.
#[derive(Debug, Default)]
pub(crate) struct BatchPlan {
    /// Rows to insert, in file order.
    pub inserts: Vec<Indicator>,
    /// Stored rows whose fields changed, with `updated_at` moved to the batch time.
    pub updates: Vec<Indicator>,
    /// Inserted, updated and unchanged rows of this batch; rejected ones are in `rejections`.
    pub counts: ImportCounts,
    /// Rows that conflict with the table.
    pub rejections: Vec<Rejection>,
}

struct Entry {
    current: Indicator,
    /// The stored row, or `None` for a row this batch inserts.
    stored: Option<Indicator>,
}

/// Plans the writes of `rows` (in file order) given the `stored` rows that share a key or an id.
///
/// Rows are applied one after the other, so when a key repeats the later row wins and each
/// repetition counts as updated or unchanged against the row before it. A stored row is written
/// only when a row of the batch changed it.
pub(crate) fn plan_batch(
    rows: Vec<(u64, IndicatorRecord)>,
    stored: Vec<Indicator>,
    now: DateTime<Utc>,
) -> BatchPlan {
    let mut plan = BatchPlan::default();
    let owners: HashMap<String, IndicatorKey> = stored
        .iter()
        .map(|row| (row.id.clone(), (row.indicator_type, row.value.clone())))
        .collect();
    let mut stored_by_key: HashMap<IndicatorKey, Indicator> = stored
        .into_iter()
        .map(|row| ((row.indicator_type, row.value.clone()), row))
        .collect();
    let mut entries: Vec<Entry> = Vec::new();
    let mut entry_of_key: HashMap<IndicatorKey, usize> = HashMap::new();
    let mut new_ids: HashSet<String> = HashSet::new();

    for (line, record) in rows {
        let key = (record.indicator_type, record.value.clone());
        if let Some(&index) = entry_of_key.get(&key) {
            count_change(&mut plan.counts, &mut entries[index].current, &record, now);
            continue;
        }
        if let Some(row) = stored_by_key.remove(&key) {
            let mut entry = Entry {
                current: row.clone(),
                stored: Some(row),
            };
            count_change(&mut plan.counts, &mut entry.current, &record, now);
            entry_of_key.insert(key, entries.len());
            entries.push(entry);
            continue;
        }

        let id = match record.id.clone() {
            Some(id) => {
                if let Some((kind, value)) = owners.get(&id) {
                    plan.rejections.push(Rejection {
                        line,
                        reason: format!("id {id} already belongs to {kind} indicator {value:?}"),
                    });
                    continue;
                }
                if new_ids.contains(&id) {
                    plan.rejections.push(Rejection {
                        line,
                        reason: format!("id {id} is already used by an earlier row of the file"),
                    });
                    continue;
                }
                id
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        new_ids.insert(id.clone());
        plan.counts.inserted += 1;
        entry_of_key.insert(key, entries.len());
        entries.push(Entry {
            current: record.to_new_indicator(id, now),
            stored: None,
        });
    }

    for entry in entries {
        match entry.stored {
            None => plan.inserts.push(entry.current),
            Some(stored) if stored != entry.current => plan.updates.push(entry.current),
            Some(_) => {}
        }
    }
    plan
}

fn count_change(
    counts: &mut ImportCounts,
    current: &mut Indicator,
    record: &IndicatorRecord,
    now: DateTime<Utc>,
) {
    if record.differs_from(current) {
        record.apply_to(current);
        current.updated_at = now;
        counts.updated += 1;
    } else {
        counts.unchanged += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::Status;
    use crate::tlp::Tlp;

    fn record(value: &str, category: &str) -> IndicatorRecord {
        IndicatorRecord {
            id: None,
            indicator_type: IndicatorType::Domain,
            value: value.to_owned(),
            category: category.to_owned(),
            risk_score: None,
            confidence: None,
            tlp: Tlp::Clear,
            tags: vec![],
            description: None,
            first_seen: "2025-01-01T00:00:00Z".parse().unwrap(),
            last_seen: "2025-01-02T00:00:00Z".parse().unwrap(),
            status: Status::Active,
        }
    }

    fn stored(value: &str, category: &str) -> Indicator {
        let then = "2025-02-01T00:00:00Z".parse().unwrap();
        let mut row =
            record(value, category).to_new_indicator(uuid::Uuid::new_v4().to_string(), then);
        row.updated_at = then;
        row
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn new_changed_and_equal_rows_are_told_apart() {
        let existing = vec![
            stored("same.example", "phishing"),
            stored("changed.example", "phishing"),
        ];
        let rows = vec![
            (2, record("new.example", "phishing")),
            (3, record("same.example", "phishing")),
            (4, record("changed.example", "investment_scam")),
        ];
        let plan = plan_batch(rows, existing.clone(), now());
        assert_eq!(
            plan.counts,
            ImportCounts {
                inserted: 1,
                updated: 1,
                unchanged: 1,
                rejected: 0
            }
        );
        assert_eq!(plan.inserts.len(), 1);
        assert_eq!(plan.inserts[0].created_at, now());
        assert!(
            uuid::Uuid::parse_str(&plan.inserts[0].id)
                .unwrap()
                .get_version_num()
                == 4
        );
        assert_eq!(plan.updates.len(), 1);
        assert_eq!(plan.updates[0].id, existing[1].id);
        assert_eq!(plan.updates[0].category, "investment_scam");
        assert_eq!(plan.updates[0].updated_at, now());
        assert_eq!(plan.updates[0].created_at, existing[1].created_at);
    }

    #[test]
    fn repeated_key_later_row_wins() {
        let rows = vec![
            (2, record("a.example", "phishing")),
            (3, record("a.example", "phishing")),
            (4, record("a.example", "crypto_drainer")),
        ];
        let plan = plan_batch(rows, vec![], now());
        assert_eq!(
            plan.counts,
            ImportCounts {
                inserted: 1,
                updated: 1,
                unchanged: 1,
                rejected: 0
            }
        );
        assert_eq!(plan.inserts.len(), 1);
        assert_eq!(plan.inserts[0].category, "crypto_drainer");
        assert!(plan.updates.is_empty());
    }

    #[test]
    fn id_of_another_indicator_is_rejected() {
        let existing = stored("owner.example", "phishing");
        let mut taken = record("other.example", "phishing");
        taken.id = Some(existing.id.clone());
        let fresh_id = uuid::Uuid::new_v4().to_string();
        let mut first = record("first.example", "phishing");
        first.id = Some(fresh_id.clone());
        let mut second = record("second.example", "phishing");
        second.id = Some(fresh_id.clone());
        let plan = plan_batch(
            vec![(2, taken), (3, first), (4, second)],
            vec![existing],
            now(),
        );
        assert_eq!(plan.counts.inserted, 1);
        assert_eq!(plan.inserts[0].id, fresh_id);
        let lines: Vec<u64> = plan
            .rejections
            .iter()
            .map(|rejection| rejection.line)
            .collect();
        assert_eq!(lines, [2, 4]);
        assert!(plan.rejections[0].reason.contains("owner.example"));
    }

    #[test]
    fn change_reverted_in_the_same_batch_still_moves_updated_at() {
        let existing = stored("a.example", "phishing");
        let rows = vec![
            (2, record("a.example", "crypto_drainer")),
            (3, record("a.example", "phishing")),
        ];
        let plan = plan_batch(rows, vec![existing], now());
        assert_eq!(plan.counts.updated, 2);
        // The fields end as stored, but the rows counted as updates moved updated_at.
        assert_eq!(plan.updates.len(), 1);
    }
}
