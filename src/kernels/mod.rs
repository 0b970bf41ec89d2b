//! Kusto's scalar rules, one function each, shared by every execution path.

pub mod distinct;
pub mod strmatch;
pub mod terms;
pub mod termscan;
pub mod time;
