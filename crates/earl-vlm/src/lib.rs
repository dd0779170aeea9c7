//! earl-vlm
