use mongosync_core::{Running, Syncer};

async fn f(running: Syncer<Running>) {
    let _ = running.reverse().await;
}

fn main() {}
