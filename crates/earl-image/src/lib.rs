//! earl-image
