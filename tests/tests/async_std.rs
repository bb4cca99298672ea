//! tether-smol under async-std's executor: the client's tasks are spawned with
//! `async_std::task::spawn`, the scenarios themselves run in `async_std::task::block_on`
//! (the scripted server stays on a tokio runtime beside them). async-std is a
//! dev-dependency only: it is deprecated upstream in favour of smol, and this proves the
//! smol adapter serves its users.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::Config;
use tether_smol::{Smol, Spawned, Spawner, Task};
use tether_tests::adapter::Adapter;
use tether_tests::scenarios;

struct AsyncStdTask(async_std::task::JoinHandle<()>);

impl Spawned for AsyncStdTask {
    fn cancel(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // async-std cancels asynchronously: the handle's cancel resolves once the task's
        // future is dropped. Dropped unpolled, the cancel runs on its executor still.
        let handle = Arc::new(Mutex::new(Some(self.0)));
        let cancel = CancelOnDrop(handle.clone());
        Box::pin(async move {
            let _cancel = cancel;
            let taken = handle.lock().unwrap().take();
            if let Some(handle) = taken {
                handle.cancel().await;
            }
        })
    }

    fn detach(self: Box<Self>) {
        // Dropping an async-std handle detaches its task.
        drop(self);
    }
}

/// Cancels the task on async-std's executor if the cancel future goes unpolled.
struct CancelOnDrop(Arc<Mutex<Option<async_std::task::JoinHandle<()>>>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.lock().unwrap().take() {
            async_std::task::spawn(async move {
                handle.cancel().await;
            });
        }
    }
}

struct AsyncStdExecutor;

impl Spawner for AsyncStdExecutor {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Task {
        Task::new(AsyncStdTask(async_std::task::spawn(future)))
    }
}

struct AsyncStd;

impl Adapter for AsyncStd {
    fn name(&self) -> &'static str {
        "tether-smol on async-std"
    }

    fn start<P: tether_adapter::Profile>(
        &self,
        url: &str,
        config: Config,
        profile: P,
        options: tether_adapter::Options,
    ) -> (tether_adapter::Handle<P>, tether_adapter::Events<P>) {
        let runtime = Smol::with_spawner(AsyncStdExecutor);
        tether_smol::connect_on(runtime, url, config, profile, options).unwrap()
    }
}

/// Runs a scenario on async-std's executor, with a tokio runtime beside it for the
/// scripted server and the scenario's own timers.
fn on_async_std<F: Future<Output = ()>>(scenario: F) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _context = tokio.enter();
    async_std::task::block_on(async {
        async_std::future::timeout(Duration::from_secs(30), scenario)
            .await
            .expect("scenario exceeded its time bound");
    });
}

#[test]
fn c01_echo() {
    on_async_std(scenarios::c01_echo(&AsyncStd));
}

#[test]
fn c02_server_restart() {
    on_async_std(scenarios::c02_server_restart(&AsyncStd));
}

#[test]
fn c05_heartbeats_never_acked() {
    on_async_std(scenarios::c05_heartbeats_never_acked(&AsyncStd));
}
