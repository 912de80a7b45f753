//! Configuration: the file model, its validation, and the compiled snapshot.
pub mod duration;
pub mod model;
pub mod snapshot;

pub use snapshot::Snapshot;
