//! earl-format
