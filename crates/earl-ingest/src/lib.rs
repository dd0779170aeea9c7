//! earl-ingest
