//! Batch-create runs: the run directory, its journal and checkpoint, the lock, and the
//! scheduler that executes (and resumes) them.

pub mod atomic;
pub mod batches;
pub mod events;
pub mod exec;
pub mod journal;
pub mod lock;
pub mod run_dir;
pub mod status;
