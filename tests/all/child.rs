//! The helper-process entry point.
//!
//! Tests start helpers by re-executing this test binary with
//! `--exact child::child_entry --nocapture --test-threads=1` and the role in
//! [`ROLE_VAR`](crate::common::ROLE_VAR) (see [`crate::common::spawn`]). In an ordinary test run
//! the variable is absent and this test returns at once.

use crate::common::{CHILD_OK, ROLE_VAR};
use crate::{
    barrier, condition, death, event, lock, owner_death, queue, raw, region, rlock, rwlock,
    semaphore, value,
};

#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let run: fn() -> shmsync::Result<()> = match role.as_str() {
        "value_counter" => value::child_counter,
        "array_counter" => value::child_array_counter,
        "lock_holder" => lock::child_lock_holder,
        "lock_releaser" => lock::child_lock_releaser,
        "lock_waiter" => lock::child_lock_waiter,
        "lock_waiter_once" => lock::child_lock_waiter_once,
        "ping_pong" => lock::child_ping_pong,
        "lock_counter" => lock::child_lock_counter,
        "rlock_observer" => rlock::child_rlock_observer,
        "rlock_waiter" => rlock::child_rlock_waiter,
        "rlock_counter" => rlock::child_rlock_counter,
        "raw_atomics" => raw::child_raw_atomics,
        "region_visitor" => region::child_region_visitor,
        "open_or_create_racer" => region::child_open_or_create_racer,
        "create_racer" => region::child_create_racer,
        "region_creator" => region::child_region_creator,
        "die_holding" => death::child_die_holding,
        "table_member" => region::child_table_member,
        "table_latecomer" => region::child_table_latecomer,
        other => match owner_death::role(other)
            .or_else(|| semaphore::role(other))
            .or_else(|| condition::role(other))
            .or_else(|| event::role(other))
            .or_else(|| barrier::role(other))
            .or_else(|| rwlock::role(other))
            .or_else(|| queue::role(other))
        {
            Some(run) => run,
            None => panic!("unknown helper role {other:?}"),
        },
    };
    if let Err(e) = run() {
        panic!("helper {role} failed: {e}");
    }
    println!("{CHILD_OK}{role}");
}
