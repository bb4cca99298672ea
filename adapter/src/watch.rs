//! The invariant checker riding along in the driver (feature `invariants`): the conformance
//! suite runs every adapter with it, so I1-I8 are checked on real sockets too. Without the
//! feature every check is a no-op the compiler removes.

use std::time::Instant;

use tether_core::{Command, Config, Event, Input, RequestId};

/// `None` when the application turned the checker off (benchmarks).
#[cfg(feature = "invariants")]
pub(crate) struct Watch(Option<Box<tether_core::invariants::ClientChecker>>);

#[cfg(not(feature = "invariants"))]
pub(crate) struct Watch;

#[cfg(feature = "invariants")]
#[allow(clippy::panic)]
fn broken(v: tether_core::invariants::Violation) -> ! {
    // A broken invariant is a bug: fail loudly where it happened.
    panic!("{v}")
}

#[cfg(feature = "invariants")]
impl Watch {
    pub(crate) fn new(config: &Config, enabled: bool) -> Self {
        Self(enabled.then(|| Box::new(tether_core::invariants::ClientChecker::new(config))))
    }

    pub(crate) fn input(&mut self, input: &Input) {
        if let Some(checker) = &mut self.0 {
            checker.input(input);
        }
    }

    pub(crate) fn call(&mut self, shutdown: bool) {
        use tether_core::invariants::Call;
        if let Some(checker) = &mut self.0 {
            checker.call(if shutdown {
                Call::Shutdown
            } else {
                Call::Other
            });
        }
    }

    pub(crate) fn request(&mut self, id: RequestId) {
        if let Some(Err(v)) = self.0.as_mut().map(|c| c.request_made(id)) {
            broken(v);
        }
    }

    pub(crate) fn command(&mut self, command: &Command) {
        if let Some(Err(v)) = self.0.as_mut().map(|c| c.command(command)) {
            broken(v);
        }
    }

    pub(crate) fn event<M, R>(&mut self, event: &Event<M, R>) {
        if let Some(Err(v)) = self.0.as_mut().map(|c| c.event(event)) {
            broken(v);
        }
    }

    pub(crate) fn after_timeout(&mut self, now: Instant, next: Option<Instant>) {
        if let Some(Err(v)) = self.0.as_mut().map(|c| c.after_timeout(now, next)) {
            broken(v);
        }
    }

    pub(crate) fn bounds(&mut self, queued: (usize, usize)) {
        if let Some(Err(v)) = self.0.as_mut().map(|c| c.bounds(queued)) {
            broken(v);
        }
    }
}

#[cfg(not(feature = "invariants"))]
impl Watch {
    pub(crate) fn new(_config: &Config, _enabled: bool) -> Self {
        Self
    }
    pub(crate) fn input(&mut self, _input: &Input) {}
    pub(crate) fn call(&mut self, _shutdown: bool) {}
    pub(crate) fn request(&mut self, _id: RequestId) {}
    pub(crate) fn command(&mut self, _command: &Command) {}
    pub(crate) fn event<M, R>(&mut self, _event: &Event<M, R>) {}
    pub(crate) fn after_timeout(&mut self, _now: Instant, _next: Option<Instant>) {}
    pub(crate) fn bounds(&mut self, _queued: (usize, usize)) {}
}
