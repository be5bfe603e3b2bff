//! Runs of a job: the run directory, its journal and checkpoint, the lock, and the
//! batch_create scheduler that executes (and resumes) them. Query exports (`crate::export`)
//! share everything here but the scheduler.

pub mod atomic;
pub mod batches;
pub mod events;
pub mod exec;
pub mod journal;
pub mod lock;
pub mod progress;
pub mod run_dir;
pub mod start;
pub mod status;
