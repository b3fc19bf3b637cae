use mongosync_core::{ClusterName, Running, StartOptions, Syncer};

async fn f(running: Syncer<Running>) {
    let _ = running.start(StartOptions::new(ClusterName::Cluster0)).await;
}

fn main() {}
