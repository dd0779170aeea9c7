//! earl-vq
