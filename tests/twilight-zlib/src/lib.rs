//! Tests only: see tests/zlib.rs.
