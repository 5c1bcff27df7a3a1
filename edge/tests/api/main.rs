//! HTTP tests of the edge: a real server on a free port per test, real databases, a store folder per test.

mod audit;
mod helpers;
mod scope;
mod serving;
mod status;
