//! Integration tests: the real `cdpjob` binary, driven the way a user drives it.

mod catalogue;
mod common;
mod delimiter;
mod export;
mod export_orders;
mod formats;
mod guards;
mod init;
mod layout;
mod lifecycle;
mod plan;
mod retry;
mod run;
mod sheets;
mod sign_and_sim;
mod sim_order;
mod snapshots;
mod sources;
mod stops;
mod sync;
mod text_sources;
mod validate;
