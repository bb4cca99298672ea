//! The Discord gateway v10 session protocol.
