//! Support for the end-to-end tests: loopback servers that speak the real wire protocols.

pub mod fake_vlm;
pub mod bins;
