//! The counter storage parameter of `ConnTable`: the default `TrafficCounters` counts, a
//! table with `NoCounters` behaves the same in every other respect and its slots are 32 bytes
//! smaller.

use std::net::{IpAddr, Ipv4Addr};

use nlkit_table::{
    Clock, ConnConfig, ConnCounters, ConnKey, ConnTable, Direction, GcBudget, ManualClock, NewConn,
    NoCounters, TrafficCounters,
};

fn tuple(i: u16) -> ConnKey {
    ConnKey::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        i,
        IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
        80,
        6,
    )
}

/// A NAT-style reply tuple (not just `tuple(i).reverse()`).
fn reply(i: u16) -> ConnKey {
    let mut r = tuple(i).reverse();
    r.src = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1));
    r
}

fn config(max: u32, clock: &ManualClock) -> ConnConfig {
    ConnConfig::new(max).with_clock(Clock::Manual(clock.clone()))
}

#[test]
fn table_without_counters_works() {
    let clock = ManualClock::new(0);
    let t: ConnTable<u32, NoCounters> = ConnTable::with_counters(config(64, &clock));
    for i in 0..10u16 {
        let timeout = if i < 4 { 100 } else { 100_000 };
        let mut c = NewConn::new(tuple(i), reply(i), timeout, u32::from(i) * 10);
        c.mark = u32::from(i);
        let r = t.insert(c).unwrap();
        assert_eq!(r.direction(), Direction::Original);
    }
    assert_eq!(t.count(), 10);

    // Lookups in both directions.
    for i in 0..10u16 {
        let o = t.get(&tuple(i)).unwrap();
        assert_eq!(o.direction(), Direction::Original);
        assert_eq!(o.reply(), reply(i));
        assert_eq!(*o.state(), u32::from(i) * 10);
        drop(o);
        let r = t.get(&reply(i)).unwrap();
        assert_eq!(r.direction(), Direction::Reply);
        assert_eq!(r.original(), tuple(i));
        *r.state() += 1;
        assert_eq!(r.mark(), u32::from(i));
    }
    assert_eq!(*t.get(&tuple(3)).unwrap().state(), 31);

    // The lock-free view reports zero counters.
    let v = t.peek(&reply(5)).unwrap();
    assert_eq!((v.direction, v.mark), (Direction::Reply, 5));
    assert_eq!((v.packets, v.bytes), ([0, 0], [0, 0]));

    // Delete by either tuple.
    assert!(t.remove(&reply(9)));
    assert!(!t.remove(&tuple(9)));
    assert!(t.get(&tuple(9)).is_none());
    assert!(t.get(&tuple(8)).unwrap().delete());
    assert_eq!(t.count(), 8);

    // gc deletes the four expired connections.
    clock.advance(200);
    let r = t.gc_step(GcBudget::default());
    assert!(r.pass_complete);
    assert_eq!((r.expired, t.count()), (4, 4));
    assert!(t.peek(&tuple(0)).is_none());

    // Iteration and predicate clean-up.
    let mut ports: Vec<u16> = t.iter().map(|c| c.original().src_port).collect();
    ports.sort_unstable();
    assert_eq!(ports, [4, 5, 6, 7]);
    assert_eq!(t.remove_matching(|c| c.mark() % 2 == 0), 2); // marks 4 and 6
    assert_eq!(*t.get(&reply(5)).unwrap().state(), 51);
    assert_eq!(t.count(), 2);

    // Freed slots are reused, and a reused slot starts from the new connection's values.
    for i in 100..162u16 {
        t.insert(NewConn::new(tuple(i), reply(i), 1000, 0)).unwrap();
    }
    assert_eq!(t.count(), 64);
    assert_eq!(t.peek(&tuple(161)).unwrap().packets, [0, 0]);
}

#[test]
fn default_counters_count_and_reset_on_reuse() {
    let clock = ManualClock::new(0);
    let t: ConnTable<u32> = ConnTable::new(config(1, &clock));
    let c = t.insert(NewConn::new(tuple(1), reply(1), 1000, 0)).unwrap();
    c.account(Direction::Original, 1, 60);
    t.get(&reply(1)).unwrap().account(Direction::Reply, 2, 3000);
    assert_eq!(c.counters(Direction::Original), (1, 60));
    assert_eq!(c.counters(Direction::Reply), (2, 3000));
    let v = t.peek(&tuple(1)).unwrap();
    assert_eq!((v.packets, v.bytes), ([1, 2], [60, 3000]));
    assert!(c.delete());
    drop(c);
    // The only slot is reused: its counters start from zero.
    let c = t.insert(NewConn::new(tuple(2), reply(2), 1000, 0)).unwrap();
    assert_eq!(c.counters(Direction::Original), (0, 0));
    assert_eq!(c.counters(Direction::Reply), (0, 0));
}

/// Slots created by a table after the same inserts, from its memory accounting.
fn created_slots<C: ConnCounters>(t: &ConnTable<u32, C>, empty: usize) -> usize {
    let grown = t.memory_bytes() - empty;
    assert_eq!(grown % ConnTable::<u32, C>::slot_bytes(), 0);
    grown / ConnTable::<u32, C>::slot_bytes()
}

#[test]
fn no_counters_slot_is_32_bytes_smaller() {
    assert_eq!(
        ConnTable::<u32, TrafficCounters>::slot_bytes()
            - ConnTable::<u32, NoCounters>::slot_bytes(),
        32
    );
    assert_eq!(
        ConnTable::<u32>::slot_bytes(),
        ConnTable::<u32, TrafficCounters>::slot_bytes()
    );
    assert_eq!(std::mem::size_of::<NoCounters>(), 0);

    // The same entries in both tables: the memory differs by 32 bytes per created slot.
    let clock = ManualClock::new(0);
    let with: ConnTable<u32> = ConnTable::new(config(10_000, &clock));
    let without: ConnTable<u32, NoCounters> = ConnTable::with_counters(config(10_000, &clock));
    let (empty_with, empty_without) = (with.memory_bytes(), without.memory_bytes());
    assert_eq!(empty_with, empty_without);
    for i in 0..5000u16 {
        with.insert(NewConn::new(tuple(i), reply(i), 1000, 0))
            .unwrap();
        without
            .insert(NewConn::new(tuple(i), reply(i), 1000, 0))
            .unwrap();
    }
    let slots = created_slots(&with, empty_with);
    assert!(slots >= 5000);
    assert_eq!(created_slots(&without, empty_without), slots);
    assert_eq!(with.memory_bytes() - without.memory_bytes(), 32 * slots);
}
