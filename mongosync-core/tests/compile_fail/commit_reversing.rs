use mongosync_core::{Reversing, Syncer};

async fn f(reversing: Syncer<Reversing>) {
    let _ = reversing.commit().await;
}

fn main() {}
