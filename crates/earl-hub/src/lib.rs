//! earl-hub
