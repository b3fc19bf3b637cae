use mongosync_core::{Paused, Syncer};

async fn f(paused: Syncer<Paused>) {
    let _ = paused.commit().await;
}

fn main() {}
