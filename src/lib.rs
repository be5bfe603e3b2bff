//! cdpjob: declarative YAML jobs against the NXCloud CDP customer API.
//!
//! Data flows one way through the modules: a job file is loaded and checked (`job`),
//! records stream from a `source`, become customers through `mapping` (using `template`
//! and the vendor's rules in `customer`), are previewed by `plan` or run by the `runner`
//! as an `import` (batches sent through `api` over a `connection`) or an `export`; every run
//! keeps its journal, checkpoint and results in a `run_dir`.

pub mod api;
pub mod catalogue;
pub mod cli;
pub mod commands;
pub mod connection;
pub mod customer;
pub mod customer_json;
pub mod diagnostic;
pub mod error;
pub mod explain;
pub mod export;
pub mod failpoint;
pub mod guard;
pub mod import;
pub mod init;
pub mod job;
pub mod mapping;
pub mod mapping_test;
pub mod notify;
pub mod notify_sign;
pub mod pipeline;
pub mod plan;
pub mod pointer;
pub mod query;
pub mod remote;
pub mod report;
pub mod retry;
pub mod rows;
pub mod run_dir;
pub mod runner;
pub mod secret;
pub mod shard;
pub mod sim;
pub mod source;
pub mod suggest;
pub mod sync;
pub mod template;

pub use run_dir::FORMAT_VERSION;
