//! The nodes sharing one PostgreSQL: which node runs which connection (lease rows, fair shares,
//! fencing: [`ownership`]), the Membership actor that heartbeats and renews them
//! ([`membership`]), the control channel commands between nodes travel on ([`control`]), and
//! the hand-over of a busy node's surplus to one that joined ([`rebalance`]).
//! docs/ARCHITECTURE.md §5 explains the model.

pub mod control;
pub mod membership;
pub mod ownership;
pub mod rebalance;
