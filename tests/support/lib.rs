//! Support for the end-to-end tests: loopback servers that speak the real wire protocols.

pub mod bins;
pub mod fake_vlm;
