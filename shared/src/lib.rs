//! Configuration, domain types, database access, snapshot layout and renderers of the partner feed.

pub mod config;
pub mod db;
pub mod import;
pub mod indicator;
pub mod keys;
pub mod query;
pub mod render;
pub mod snapshot;
pub mod storage;
pub mod tlp;

pub use indicator::{Indicator, IndicatorType, Status};
pub use tlp::Tlp;
