//! Fixtures, a reader of published snapshots and the Python checks shared by the tests.

pub mod fixtures;
pub mod python;
pub mod snapshot_reader;
