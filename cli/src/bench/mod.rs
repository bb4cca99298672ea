//! `tether bench`: the project's benchmarks behind one command, each printing a table.

pub mod capacity;
pub mod echo;
pub mod echo_smol;
pub mod node;
pub mod proc;
