use mongosync_core::{Idle, Syncer};

async fn f(idle: Syncer<Idle>) {
    let _ = idle.commit().await;
}

fn main() {}
