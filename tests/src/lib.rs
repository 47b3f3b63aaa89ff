//! wren-tests: end-to-end tests that start real `wren` processes (servers
//! and clients, each in a network namespace of the test's making) and
//! break things: kill, partition, delay and lose packets. It also holds the
//! test that enforces DESIGN.md's dependency rule.
//!
//! Nothing depends on this crate.

#![forbid(unsafe_code)]
