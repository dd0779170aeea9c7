//! earl-train
