//! cdpjob: declarative YAML jobs against the NXCloud CDP customer API.
//!
//! The pipeline, stage by stage: a job file is loaded and checked (`job`), records stream
//! from a `source`, become customers through the `mapping` templates and the vendor's rules
//! (`customer`), and are previewed by `plan`.

pub mod api;
pub mod catalogue;
pub mod cli;
pub mod commands;
pub mod customer;
pub mod diagnostic;
pub mod error;
pub mod export;
pub mod failpoint;
pub mod job;
pub mod mapping;
pub mod pipeline;
pub mod plan;
pub mod pointer;
pub mod query;
pub mod run;
pub mod secret;
pub mod sim;
pub mod source;
pub mod suggest;
pub mod template;
