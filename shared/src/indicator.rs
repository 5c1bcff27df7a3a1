//! The indicator record shared by the importer, the publisher, the index and the renderers.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::tlp::Tlp;

/// Kind of observable an indicator describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorType {
    /// A full URL.
    Url,
    /// A domain name (punycode or Unicode, as observed).
    Domain,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// A cryptocurrency wallet address.
    CryptoWallet,
    /// An MD5 file hash.
    Md5,
    /// A SHA-1 file hash.
    Sha1,
    /// A SHA-256 file hash.
    Sha256,
}

/// Error returned when a text is not an indicator type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid indicator type {0:?}: expected url, domain, ipv4, ipv6, email, phone, crypto_wallet, md5, sha1 or sha256")]
pub struct InvalidIndicatorType(pub String);

impl IndicatorType {
    /// Every type, in declaration order.
    pub const ALL: [IndicatorType; 10] = [
        IndicatorType::Url,
        IndicatorType::Domain,
        IndicatorType::Ipv4,
        IndicatorType::Ipv6,
        IndicatorType::Email,
        IndicatorType::Phone,
        IndicatorType::CryptoWallet,
        IndicatorType::Md5,
        IndicatorType::Sha1,
        IndicatorType::Sha256,
    ];

    /// Returns the name stored in the `indicator_type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorType::Url => "url",
            IndicatorType::Domain => "domain",
            IndicatorType::Ipv4 => "ipv4",
            IndicatorType::Ipv6 => "ipv6",
            IndicatorType::Email => "email",
            IndicatorType::Phone => "phone",
            IndicatorType::CryptoWallet => "crypto_wallet",
            IndicatorType::Md5 => "md5",
            IndicatorType::Sha1 => "sha1",
            IndicatorType::Sha256 => "sha256",
        }
    }
}

impl FromStr for IndicatorType {
    type Err = InvalidIndicatorType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        IndicatorType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| InvalidIndicatorType(text.to_owned()))
    }
}

impl fmt::Display for IndicatorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lifecycle state of an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Current and served to partners.
    Active,
    /// Withdrawn; kept as a tombstone so incremental consumers learn of it.
    Revoked,
}

/// Error returned when a text is not an indicator status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid status {0:?}: expected active or revoked")]
pub struct InvalidStatus(pub String);

impl Status {
    /// Returns the name stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Revoked => "revoked",
        }
    }
}

impl FromStr for Status {
    type Err = InvalidStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Status::Active),
            "revoked" => Ok(Status::Revoked),
            _ => Err(InvalidStatus(text.to_owned())),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the `indicators` table, as the feed publishes it.
///
/// The serde form is the feed's camelCase JSON record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Indicator {
    /// Primary key, a UUID in text form (UUIDv4 for rows the importer creates).
    pub id: String,
    /// Observable kind.
    #[serde(rename = "type")]
    pub indicator_type: IndicatorType,
    /// The observable, byte for byte as observed.
    pub value: String,
    /// Category such as `phishing` or `crypto_drainer`.
    pub category: String,
    /// Risk score from 0 to 100, when known.
    pub risk_score: Option<f64>,
    /// Confidence from 0 to 100, when known.
    pub confidence: Option<i32>,
    /// Sharing level.
    pub tlp: Tlp,
    /// Free-form tags; none contains `;`.
    pub tags: Vec<String>,
    /// Analyst description, when any.
    pub description: Option<String>,
    /// First time the observable was seen.
    pub first_seen: DateTime<Utc>,
    /// Last time the observable was seen.
    pub last_seen: DateTime<Utc>,
    /// Time the row was created; the feed's JSON record leaves it out, STIX uses it as `created`.
    pub created_at: DateTime<Utc>,
    /// Time of the last change; drives `since`.
    pub updated_at: DateTime<Utc>,
    /// `active`, or `revoked` for a tombstone.
    pub status: Status,
}
