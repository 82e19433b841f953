//! The bottom layer: small helpers that every other module may use — writing a file
//! atomically ([`atomic`]), small JSON files ([`json`]) and mixing seeds ([`seed`]). It imports nothing of the crate, so
//! using it never makes a layer reach up into another.

pub(crate) mod atomic;
pub(crate) mod json;
pub(crate) mod seed;
