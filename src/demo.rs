//! A generated, realistic indicator set for `partner-feed up --demo`: the same values on every run, dated relative to today.

use chrono::{DateTime, Duration, TimeZone, Utc};
use partner_feed_shared::{Indicator, IndicatorType, Status, Tlp};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Seed of the demo set, so every demo database contains the same indicators.
pub const DEMO_SEED: u64 = 0x5eed_f00d;

/// Number of indicators in the demo set.
pub const DEMO_COUNT: usize = 2_000;

const CATEGORIES: [&str; 6] = [
    "phishing",
    "investment_scam",
    "crypto_drainer",
    "malware_download",
    "tech_support_scam",
    "romance_scam",
];

const TAGS: [&str; 10] = [
    "bank-impersonation",
    "sms-lure",
    "fake-exchange",
    "wallet-connect",
    "emotet",
    "qakbot",
    "parcel-delivery",
    "tax-refund",
    "remote-access",
    "pig-butchering",
];

const BRANDS: [&str; 8] = [
    "paypa1",
    "amaz0n-billing",
    "secure-bank",
    "metamask-verify",
    "dhl-parcel",
    "irs-refund",
    "coinbase-help",
    "microsoft-support",
];

const TLD: [&str; 6] = ["com", "net", "xyz", "top", "info", "shop"];

/// Generates the demo set: every indicator type, several categories, scores, TLPs and a few
/// revoked tombstones, with timestamps in the 90 days before `now`.
pub fn generate(now: DateTime<Utc>) -> Vec<Indicator> {
    let mut rng = StdRng::seed_from_u64(DEMO_SEED);
    let base = Utc.from_utc_datetime(
        &now.date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists"),
    );
    (0..DEMO_COUNT)
        .map(|n| generate_one(&mut rng, n, base))
        .collect()
}

fn generate_one(rng: &mut StdRng, n: usize, base: DateTime<Utc>) -> Indicator {
    let indicator_type = IndicatorType::ALL[n % IndicatorType::ALL.len()];
    let category = pick_category(rng, indicator_type);
    let first_seen = base - Duration::minutes(rng.gen_range(2 * 24 * 60..90 * 24 * 60));
    let seen_for = (base - first_seen).num_minutes().min(14 * 24 * 60);
    let last_seen = first_seen + Duration::minutes(rng.gen_range(0..seen_for));
    let updated_at = (last_seen + Duration::minutes(rng.gen_range(0..60))).min(base);
    let tag_count = rng.gen_range(0..3);
    let tags = TAGS
        .choose_multiple(rng, tag_count)
        .map(|tag| (*tag).to_owned())
        .collect();
    Indicator {
        id: uuid::Builder::from_random_bytes(rng.gen())
            .into_uuid()
            .to_string(),
        indicator_type,
        value: generate_value(rng, indicator_type, n),
        category: category.to_owned(),
        risk_score: rng
            .gen_bool(0.9)
            .then(|| f64::from(rng.gen_range(0..=200u32)) / 2.0),
        confidence: rng.gen_bool(0.8).then(|| rng.gen_range(10..=100)),
        tlp: pick_tlp(rng),
        tags,
        description: rng
            .gen_bool(0.3)
            .then(|| format!("Reported {category} infrastructure, cluster {}", n % 17)),
        first_seen,
        last_seen,
        created_at: first_seen,
        updated_at,
        status: if rng.gen_bool(0.03) {
            Status::Revoked
        } else {
            Status::Active
        },
    }
}

fn pick_category(rng: &mut StdRng, indicator_type: IndicatorType) -> &'static str {
    match indicator_type {
        IndicatorType::CryptoWallet => "crypto_drainer",
        IndicatorType::Md5 | IndicatorType::Sha1 | IndicatorType::Sha256 => "malware_download",
        _ => CATEGORIES.choose(rng).copied().unwrap_or("phishing"),
    }
}

fn pick_tlp(rng: &mut StdRng) -> Tlp {
    match rng.gen_range(0..100) {
        0..=44 => Tlp::Clear,
        45..=74 => Tlp::Green,
        75..=89 => Tlp::Amber,
        90..=95 => Tlp::AmberStrict,
        _ => Tlp::Red,
    }
}

fn generate_value(rng: &mut StdRng, indicator_type: IndicatorType, n: usize) -> String {
    let brand = BRANDS.choose(rng).copied().unwrap_or("secure-bank");
    let tld = TLD.choose(rng).copied().unwrap_or("com");
    match indicator_type {
        IndicatorType::Url => format!(
            "https://{brand}-{n}.{tld}/login?session={:08x}",
            rng.gen::<u32>()
        ),
        IndicatorType::Domain => format!("{brand}-{n}.{tld}"),
        IndicatorType::Ipv4 => format!("198.51.{}.{}", n % 256, rng.gen_range(1..255)),
        IndicatorType::Ipv6 => format!("2001:db8:{:x}::{:x}", n, rng.gen::<u16>()),
        IndicatorType::Email => format!("support-{n}@{brand}.{tld}"),
        IndicatorType::Phone => format!("+1-555-{:04}", n % 10_000),
        IndicatorType::CryptoWallet => format!("0x{:040x}", rng.gen::<u128>() ^ (n as u128)),
        IndicatorType::Md5 => hex_digits(rng, 32),
        IndicatorType::Sha1 => hex_digits(rng, 40),
        IndicatorType::Sha256 => hex_digits(rng, 64),
    }
}

fn hex_digits(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_set_is_the_same_every_run() {
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
        assert_eq!(generate(now), generate(now));
    }

    #[test]
    fn demo_set_covers_types_tlps_and_tombstones() {
        let now = Utc::now();
        let set = generate(now);
        assert!(set
            .iter()
            .all(|row| row.first_seen <= row.last_seen && row.last_seen <= row.updated_at));
        assert!(set.iter().all(|row| row.updated_at <= now));
        assert_eq!(set.len(), DEMO_COUNT);
        for kind in IndicatorType::ALL {
            assert!(
                set.iter().any(|row| row.indicator_type == kind),
                "missing {kind}"
            );
        }
        for level in Tlp::ALL {
            assert!(set.iter().any(|row| row.tlp == level), "missing {level}");
        }
        assert!(set.iter().any(|row| row.status == Status::Revoked));
        assert!(set.iter().any(|row| row.risk_score.is_none()));
        let mut values: Vec<_> = set
            .iter()
            .map(|row| (row.indicator_type, row.value.clone()))
            .collect();
        values.sort();
        values.dedup();
        assert_eq!(values.len(), DEMO_COUNT, "type and value must be unique");
    }
}
