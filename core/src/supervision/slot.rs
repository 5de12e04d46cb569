//! [`Slot`]: where a child's current `ActorRef` is kept for callers outside the tree, so a
//! caller asks whichever incarnation runs now.

use ractor::ActorRef;
use std::sync::{Arc, RwLock};

/// The current `ActorRef` of a child, replaced on every restart, for callers outside the tree
/// (HTTP handlers) that must reach whichever incarnation runs now.
pub struct Slot<M>(Arc<RwLock<Option<ActorRef<M>>>>);

impl<M> Clone for Slot<M> {
    fn clone(&self) -> Self {
        Slot(self.0.clone())
    }
}

impl<M> Default for Slot<M> {
    fn default() -> Self {
        Slot(Arc::new(RwLock::new(None)))
    }
}

impl<M: ractor::Message> Slot<M> {
    pub fn get(&self) -> Option<ActorRef<M>> {
        self.0.read().expect("slot lock").clone()
    }
    pub(super) fn set(&self, r: Option<ActorRef<M>>) {
        *self.0.write().expect("slot lock") = r;
    }
}
