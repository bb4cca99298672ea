//! What the scenarios need from an adapter, so one scenario runs against every adapter.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tether_core::{
    CallError, Config, Event, Frame, Outcome, Protocol, ReconnectMode, RequestError, SendError,
    SendId, Stats, Status,
};

/// One client, as a scenario drives it.
pub trait TestClient<P: Protocol>: Send + Sync {
    fn send(&self, frame: Frame) -> BoxFuture<'_, Result<SendId, SendError>>;
    fn request(
        &self,
        request: P::Request,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Outcome<P::Response>, RequestError>>;
    fn reconnect(&self, mode: ReconnectMode) -> BoxFuture<'_, Result<(), CallError>>;
    fn shutdown(&self) -> BoxFuture<'_, Vec<(SendId, Frame)>>;
    fn state(&self) -> BoxFuture<'_, Result<Status, CallError>>;
    fn stats(&self) -> BoxFuture<'_, Result<Stats, CallError>>;
}

/// The events of one client.
pub type EventStream<P> =
    BoxStream<'static, Event<<P as Protocol>::Message, <P as Protocol>::Response>>;

/// An adapter under test: starts clients.
pub trait Adapter: Send + Sync + 'static {
    /// The adapter's name, for messages.
    fn name(&self) -> &'static str;

    /// Starts a client of `url` with `options`: the one thing each adapter says itself.
    fn start<P: tether_adapter::Profile>(
        &self,
        url: &str,
        config: Config,
        profile: P,
        options: tether_adapter::Options,
    ) -> (tether_adapter::Handle<P>, tether_adapter::Events<P>);

    /// Starts a client of `url` with `event_buffer` events of room for a slow consumer, as
    /// the scenarios drive it.
    fn connect<P>(
        &self,
        url: &str,
        config: Config,
        profile: P,
        event_buffer: usize,
    ) -> (std::sync::Arc<dyn TestClient<P>>, EventStream<P>)
    where
        P: Protocol + Send + Sync + 'static,
        P::Message: Send + std::fmt::Debug,
        P::Request: Send,
        P::Answer: Send,
        P::Response: Send + std::fmt::Debug,
    {
        let options = tether_adapter::Options::builder()
            .event_buffer(event_buffer)
            .build()
            .expect("a positive event buffer");
        let (handle, events) = self.start(url, config, profile, options);
        boxed(handle, events)
    }
}

/// Every adapter hands out the same handle and event stream (from `tether-adapter`), so
/// one implementation serves them all.
impl<P: tether_adapter::Profile + Sync> TestClient<P> for tether_adapter::Handle<P> {
    fn send(&self, frame: Frame) -> BoxFuture<'_, Result<SendId, SendError>> {
        Box::pin(tether_adapter::Handle::send(self, frame))
    }
    fn request(
        &self,
        request: P::Request,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Outcome<P::Response>, RequestError>> {
        Box::pin(tether_adapter::Handle::request(self, request, timeout))
    }
    fn reconnect(&self, mode: ReconnectMode) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(tether_adapter::Handle::reconnect(self, mode))
    }
    fn shutdown(&self) -> BoxFuture<'_, Vec<(SendId, Frame)>> {
        Box::pin(tether_adapter::Handle::shutdown(self))
    }
    fn state(&self) -> BoxFuture<'_, Result<Status, CallError>> {
        Box::pin(tether_adapter::Handle::state(self))
    }
    fn stats(&self) -> BoxFuture<'_, Result<Stats, CallError>> {
        Box::pin(tether_adapter::Handle::stats(self))
    }
}

/// A started client, as the scenarios take it.
pub fn boxed<P>(
    handle: tether_adapter::Handle<P>,
    events: tether_adapter::Events<P>,
) -> (std::sync::Arc<dyn TestClient<P>>, EventStream<P>)
where
    P: tether_adapter::Profile + Sync,
{
    use futures_util::StreamExt;
    (std::sync::Arc::new(handle), events.boxed())
}
