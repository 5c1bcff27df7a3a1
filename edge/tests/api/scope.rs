//! Property: whatever a key's scope and whatever the query, no row above the allowed TLP or outside the key's categories is served.

use proptest::prelude::*;
use reqwest::StatusCode;

use partner_feed_shared::Tlp;

use crate::helpers::{base_time, indicators, page_ids, spawn_app, Backend, CATEGORIES};

const TLP_NAMES: [&str; 6] = [
    "clear",
    "TLP:WHITE",
    "green",
    "TLP:AMBER",
    "amber+strict",
    "tlp:Green",
];

fn scope_strategy() -> impl Strategy<Value = (Option<usize>, Vec<bool>)> {
    (
        proptest::option::of(0usize..4),
        proptest::collection::vec(any::<bool>(), CATEGORIES.len()),
    )
}

fn query_strategy(
) -> impl Strategy<Value = (Option<usize>, Option<usize>, Option<u8>, bool, u8, u8, u8)> {
    (
        proptest::option::of(0usize..TLP_NAMES.len()),
        proptest::option::of(0usize..CATEGORIES.len() + 1),
        proptest::option::of(0u8..=100),
        any::<bool>(),
        1u8..4,
        1u8..30,
        0u8..3,
    )
}

#[test]
fn no_row_beyond_scope_is_served() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rows = indicators(120, 40, base_time());
    let Some(app) = runtime.block_on(spawn_app(Backend::Sqlite, rows.clone())) else {
        return;
    };
    let tlp_of = |id: &str| rows.iter().find(|row| row.id == id).unwrap().tlp;
    let category_of = |id: &str| {
        rows.iter()
            .find(|row| row.id == id)
            .unwrap()
            .category
            .clone()
    };

    let config = ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    };
    proptest!(config, |(scope in scope_strategy(), query in query_strategy())| {
        let (key_tlp, allowed) = scope;
        let key_max = key_tlp.map(|level| Tlp::ALL[level]).unwrap_or(Tlp::Amber);
        let mut scopes: Vec<String> = key_tlp
            .map(|level| format!("tlp:{}", Tlp::ALL[level].as_str().trim_start_matches("TLP:").to_lowercase()))
            .into_iter()
            .collect();
        let allowed_categories: Vec<&str> = CATEGORIES
            .iter()
            .zip(&allowed)
            .filter(|(_, keep)| **keep)
            .map(|(name, _)| *name)
            .collect();
        scopes.extend(allowed_categories.iter().map(|name| format!("category:{name}")));

        let (tlp, category, min_score, since, page, page_size, format) = query;
        let mut params = vec![format!("page={page}"), format!("pageSize={page_size}")];
        let requested_tlp = tlp.map(|index| TLP_NAMES[index].parse::<Tlp>().unwrap());
        if let Some(index) = tlp {
            params.push(format!("tlp={}", TLP_NAMES[index].replace('+', "%2B")));
        }
        let category = category.map(|index| CATEGORIES.get(index).copied().unwrap_or("unknown_category"));
        if let Some(name) = category {
            params.push(format!("category={}", name.to_uppercase()));
        }
        if let Some(score) = min_score {
            params.push(format!("minRiskScore={score}"));
        }
        if since {
            params.push("since=2026-02-28T00:00:00Z".to_owned());
        }
        params.push(format!("fmt={}", ["json", "csv", "stix"][format as usize]));

        let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let (status, ids) = runtime.block_on(async {
            let (key, _) = app.create_key(&scope_refs, None).await;
            let json_params = params.join("&").replace("fmt=csv", "fmt=json").replace("fmt=stix", "fmt=json");
            let response = app.get(&format!("/feeds/indicators?{json_params}"), Some(&key)).await;
            let status = response.status();
            let ids = if status == StatusCode::OK {
                page_ids(&response.json().await.unwrap())
            } else {
                Vec::new()
            };
            let other = app.get(&format!("/feeds/indicators?{}", params.join("&")), Some(&key)).await;
            assert_eq!(other.status(), status, "every format gives the same status");
            (status, ids)
        });

        let category_rejected = category.is_some_and(|name| {
            !allowed_categories.is_empty() && !allowed_categories.contains(&name)
        });
        let tlp_rejected = requested_tlp.is_some_and(|level| level > key_max);
        if category_rejected || tlp_rejected {
            prop_assert_eq!(status, StatusCode::FORBIDDEN);
        } else {
            prop_assert_eq!(status, StatusCode::OK);
        }
        let ceiling = requested_tlp.unwrap_or(Tlp::Amber).min(key_max);
        for id in &ids {
            prop_assert!(tlp_of(id) <= ceiling, "{} is {:?}, above {:?}", id, tlp_of(id), ceiling);
            if !allowed_categories.is_empty() {
                prop_assert!(allowed_categories.contains(&category_of(id).as_str()));
            }
        }
    });
}
