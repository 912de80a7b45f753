//! Configuration: the file model, its validation, and the compiled snapshot.
mod builtin;
mod compile;
pub mod duration;
pub mod error;
mod files;
mod load;
pub mod model;
pub mod snapshot;
pub mod summary;
mod values;

pub use compile::certs::validity_problems as certificate_problems;
pub use error::{ConfigError, ConfigErrors};
pub use load::{load, load_str, load_str_recording};
pub use snapshot::Snapshot;
pub use summary::{summary, summary_at};
