//! Wall-clock time as the store keeps it: milliseconds since the Unix epoch.

pub use parley_shared::now_ms;
