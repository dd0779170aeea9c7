//! earl-model
