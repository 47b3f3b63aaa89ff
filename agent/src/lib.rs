//! wren-agent: the `wren` binary's insides, as a library so that benchmarks
//! and fuzz targets can reach them.
//!
//! It is the CLI, the agent (server, client, or both with `--dev`), and the
//! wire; it wires the library crates together and is the only place that
//! opens sockets, owns the executor and decides threads.

#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod dev;
pub mod ids;
pub mod memory;
pub mod server;
pub mod wire;
