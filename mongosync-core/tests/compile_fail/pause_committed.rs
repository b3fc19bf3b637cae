use mongosync_core::{Committed, Syncer};

async fn f(committed: Syncer<Committed>) {
    let _ = committed.pause().await;
}

fn main() {}
