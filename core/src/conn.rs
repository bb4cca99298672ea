//! Connection generations.

use std::fmt;

/// The generation of one socket the machine asked for.
///
/// The machine allocates a `ConnId` each time it emits [`Command::Open`](crate::Command::Open).
/// Ids strictly increase over the life of a machine and are never reused, so work tagged
/// with an older id can always be told apart from work of the current socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u64);

impl ConnId {
    /// Builds an id from its number: for adapters and tests that name a generation.
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// The number of this generation; the first socket of a machine is 1.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Hands out `ConnId`s in strictly increasing order, never the same twice: the generations
/// of a client's sockets, or of the connections a server accepts.
#[derive(Debug, Clone, Default)]
pub struct ConnIds {
    last: u64,
}

impl ConnIds {
    /// None handed out yet; the first is `ConnId` 1.
    pub fn new() -> Self {
        Self { last: 0 }
    }

    /// The next generation.
    pub fn issue(&mut self) -> ConnId {
        // u64 cannot be exhausted by sockets opened one at a time; saturate rather than wrap
        // so an id is never reused even in theory.
        self.last = self.last.saturating_add(1);
        ConnId(self.last)
    }

    /// Whether `conn` was ever handed out.
    pub fn issued(&self, conn: ConnId) -> bool {
        conn.0 >= 1 && conn.0 <= self.last
    }
}
