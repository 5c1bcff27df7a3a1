//! Traffic Light Protocol 2.0 levels, ordered from least to most restricted.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A TLP 2.0 level. The derived order is CLEAR < GREEN < AMBER < AMBER+STRICT < RED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tlp {
    /// `TLP:CLEAR` (TLP 1.0 called it `TLP:WHITE`).
    Clear,
    /// `TLP:GREEN`.
    Green,
    /// `TLP:AMBER`.
    Amber,
    /// `TLP:AMBER+STRICT`.
    AmberStrict,
    /// `TLP:RED`: never leaves the platform.
    Red,
}

/// Error returned when a text is not a TLP level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid TLP level {0:?}: expected TLP:CLEAR, TLP:WHITE, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT or TLP:RED")]
pub struct InvalidTlp(pub String);

impl Tlp {
    /// Every level, in order.
    pub const ALL: [Tlp; 5] = [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];

    /// Returns the canonical name, such as `TLP:AMBER+STRICT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }
}

impl FromStr for Tlp {
    type Err = InvalidTlp;

    /// Parses a level with or without the `TLP:` prefix, in any case; `WHITE` is read as `CLEAR`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("TLP:").unwrap_or(&upper);
        match name {
            "CLEAR" | "WHITE" => Ok(Tlp::Clear),
            "GREEN" => Ok(Tlp::Green),
            "AMBER" => Ok(Tlp::Amber),
            "AMBER+STRICT" => Ok(Tlp::AmberStrict),
            "RED" => Ok(Tlp::Red),
            _ => Err(InvalidTlp(text.to_owned())),
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Tlp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Tlp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered() {
        assert!(Tlp::Clear < Tlp::Green);
        assert!(Tlp::Green < Tlp::Amber);
        assert!(Tlp::Amber < Tlp::AmberStrict);
        assert!(Tlp::AmberStrict < Tlp::Red);
    }

    #[test]
    fn parse_accepts_prefix_case_and_white() {
        for (text, level) in [
            ("TLP:WHITE", Tlp::Clear),
            ("white", Tlp::Clear),
            ("tlp:clear", Tlp::Clear),
            ("Green", Tlp::Green),
            ("TLP:AMBER", Tlp::Amber),
            ("amber+strict", Tlp::AmberStrict),
            ("TLP:Amber+Strict", Tlp::AmberStrict),
            ("RED", Tlp::Red),
        ] {
            assert_eq!(text.parse::<Tlp>(), Ok(level), "parsing {text}");
        }
    }

    #[test]
    fn parse_rejects_unknown_names() {
        for text in ["", "TLP:", "AMBER STRICT", "TLP:BLUE", "TLP:AMBER+"] {
            assert!(text.parse::<Tlp>().is_err(), "{text} must be rejected");
        }
    }

    #[test]
    fn display_round_trips() {
        for level in Tlp::ALL {
            assert_eq!(level.to_string().parse::<Tlp>(), Ok(level));
        }
    }
}
