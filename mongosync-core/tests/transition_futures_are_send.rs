//! Every transition future is `Send + 'static` and the handle `Send + Sync + 'static`, as pyo3's
//! and napi's task spawners need. A compile-time check: this file only builds if they are.

use std::future::Future;

use mongosync_core::{
    AnySyncer, ClusterName, Committed, Committing, Idle, Paused, Reversing, Running, StartOptions,
    SyncHandle, Syncer,
};

fn send<F: Future + Send + 'static>(_: F) {}
fn shareable<T: Clone + Send + Sync + 'static>() {}

#[allow(dead_code)]
#[allow(clippy::too_many_arguments)]
fn every_transition_future_is_send(
    idle: Syncer<Idle>,
    running: Syncer<Running>,
    running2: Syncer<Running>,
    paused: Syncer<Paused>,
    committing: Syncer<Committing>,
    committed: Syncer<Committed>,
    reversing: Syncer<Reversing>,
    any: AnySyncer,
) {
    send(idle.start(StartOptions::new(ClusterName::Cluster0)));
    send(running.pause());
    send(running2.commit());
    send(paused.resume());
    send(committing.wait());
    send(committed.reverse());
    send(reversing.wait());
    send(any.shutdown());
    send(AnySyncer::attach("a", "b", Default::default()));
}

#[test]
fn the_handle_is_shareable() {
    shareable::<SyncHandle>();
    // The futures above are checked by the compiler; this test keeps the file in the run.
    let _ = every_transition_future_is_send;
}
