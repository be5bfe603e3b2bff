//! Reading the CDP back (SPEC §9, §12 R14–R15): customers looked up by their match key
//! through the query endpoint, and compared with what a merge mode makes of what was (or
//! would be) sent. `plan --remote` shows what a run would change; `verify` checks what a
//! run left. Neither takes the job's lock: they only read, from the API and a run directory.
//!
//! The vendor documents neither how it matches a record to a customer nor what its merge
//! modes do field by field: both are inferred (see README, Reading the CDP back).

pub mod compare;
pub mod lookup;
pub mod plan;
pub mod progress;
pub mod sample;
pub mod table;
pub mod verify;
