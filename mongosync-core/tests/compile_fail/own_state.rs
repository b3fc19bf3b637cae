// The state trait is sealed: no state can be added from outside.
struct Aborted;
impl mongosync_core::State for Aborted {
    const STATE: mongosync_core::SyncState = mongosync_core::SyncState::Idle;
}

fn main() {}
