//! Fairness between connections (and so between users: a connection belongs to one user).
//! Each connection has its own lane that claims only its own rows at its own rate, so a
//! backlog on one connection, bulk or not, never delays another connection's messages. The
//! one shared resource is the number of rows a node holds in memory ([`super::OutboundSettings::held_budget`]):
//! it is split max-min fairly, so a lane with a huge backlog gets no more than an equal share
//! while others want rows.

/// How many rows a lane may claim now: what it wants (`target - held_by_lane`), limited to its
/// equal share of the budget among `active_lanes`, and to what is left of the budget.
pub fn claim_limit(
    target: usize,
    held_by_lane: usize,
    total_held: usize,
    active_lanes: usize,
    budget: usize,
) -> usize {
    let want = target.saturating_sub(held_by_lane);
    let share = (budget / active_lanes.max(1)).max(1);
    let room_in_share = share.saturating_sub(held_by_lane);
    let room_in_budget = budget.saturating_sub(total_held);
    want.min(room_in_share)
        .min(room_in_budget.max(usize::from(held_by_lane == 0)))
}

#[cfg(test)]
mod tests {
    use super::claim_limit;

    #[test]
    fn wants_within_share() {
        assert_eq!(claim_limit(80, 0, 0, 1, 20_000), 80);
        assert_eq!(claim_limit(80, 50, 50, 1, 20_000), 30);
        // Ten lanes share a budget of 100: each at most 10.
        assert_eq!(claim_limit(80, 0, 0, 10, 100), 10);
        assert_eq!(claim_limit(80, 10, 60, 10, 100), 0);
    }

    #[test]
    fn an_empty_lane_always_gets_one() {
        // The budget is used up by others; an empty lane still moves.
        assert_eq!(claim_limit(80, 0, 100, 10, 100), 1);
    }
}
