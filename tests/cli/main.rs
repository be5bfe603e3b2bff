//! Integration tests: the real `cdpjob` binary, driven the way a user drives it.

mod catalogue;
mod common;
mod export;
mod export_orders;
mod formats;
mod guards;
mod layout;
mod lifecycle;
mod plan;
mod retry;
mod run;
mod servers;
mod sign_and_sim;
mod sim_order;
mod snapshots;
mod sources;
mod sql;
mod sql_mariadb;
mod sql_postgres;
mod sql_sqlite;
mod stops;
mod sync;
mod validate;
