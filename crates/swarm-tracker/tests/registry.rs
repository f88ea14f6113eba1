//! The swarm registry with a fake clock: expiry, the random subset, seeders
//! and leechers, `stopped` and `completed`, limits and the flood bound.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use swarm_engine::Instant;
use swarm_tracker::registry::{
    Announce, AnnouncePeers, PeerId, Refusal, Registry, RegistryConfig, SwarmCounts,
};
use swarm_wire::metainfo::InfoHash;
use swarm_wire::tracker::Event;

const T0: Instant = Instant(1_000_000_000);

fn at(seconds: u64) -> Instant {
    Instant(T0.0 + seconds * 1_000_000)
}

fn hash(n: u32) -> InfoHash {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(&n.to_be_bytes());
    h[19] = 0xAA;
    InfoHash(h)
}

fn pid(n: u32) -> PeerId {
    let mut id = *b"-XX0001-000000000000";
    id[16..].copy_from_slice(&n.to_be_bytes());
    PeerId(id)
}

/// Peer `n` at 10.x.y.z:6881+n%1000.
fn addr(n: u32) -> SocketAddr {
    let b = n.to_be_bytes();
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, b[1], b[2], b[3])),
        6881 + (n % 1000) as u16,
    )
}

fn announce(torrent: u32, n: u32, left: u64, event: Event) -> Announce {
    Announce {
        info_hash: hash(torrent),
        peer_id: pid(n),
        addr: addr(n),
        left,
        event,
        numwant: None,
    }
}

fn config() -> RegistryConfig {
    RegistryConfig::with_interval(1800)
}

fn run(reg: &mut Registry, now: Instant, a: &Announce) -> (SwarmCounts, Vec<SocketAddr>) {
    let mut out = AnnouncePeers::new(false);
    let reply = reg.announce(now, a, &mut out).expect("announce accepted");
    reg.check_invariants();
    (
        SwarmCounts {
            complete: reply.complete,
            incomplete: reply.incomplete,
            downloaded: reply.downloaded,
        },
        out.addrs().collect(),
    )
}

#[test]
fn a_silent_peer_expires_after_two_intervals_and_its_empty_swarm_goes() {
    let mut reg = Registry::new(config(), 1);
    run(&mut reg, at(0), &announce(1, 1, 100, Event::Started));
    run(&mut reg, at(0), &announce(1, 2, 100, Event::Started));
    // Peer 2 re-announces; peer 1 stays silent.
    run(&mut reg, at(1800), &announce(1, 2, 50, Event::None));
    assert_eq!(reg.expire(at(3600)), 0, "not yet: exactly 2 × interval");
    assert_eq!(reg.peers_len(), 2);
    assert_eq!(
        reg.expire(at(3601)),
        1,
        "peer 1 silent for 2 × interval + 1 s"
    );
    reg.check_invariants();
    assert_eq!(reg.scrape(&hash(1)).incomplete, 1);
    let (_, peers) = run(&mut reg, at(3602), &announce(1, 3, 100, Event::Started));
    assert_eq!(peers, vec![addr(2)], "only the live peer is handed out");
    assert_eq!(reg.expire(at(1800 + 3601)), 1, "peer 2 expires in turn");
    assert_eq!(reg.expire(at(3602 + 3601)), 1);
    assert_eq!(
        (reg.peers_len(), reg.swarms_len()),
        (0, 0),
        "empty swarm removed"
    );
    reg.check_invariants();
}

#[test]
fn a_random_subset_never_holds_the_asker_nor_duplicates() {
    let mut reg = Registry::new(config(), 2);
    for n in 0..300 {
        run(&mut reg, at(0), &announce(1, n, 10, Event::Started));
    }
    for n in 0..300 {
        let (_, peers) = run(&mut reg, at(1), &announce(1, n, 10, Event::None));
        assert_eq!(peers.len(), 50, "numwant defaults to 50");
        assert!(!peers.contains(&addr(n)), "peer {n} got itself");
        let distinct: BTreeSet<_> = peers.iter().collect();
        assert_eq!(distinct.len(), peers.len(), "duplicates handed to {n}");
    }
    // numwant is capped at 200, and 0 gives none.
    let mut out = AnnouncePeers::new(true);
    let mut big = announce(1, 7, 10, Event::None);
    big.numwant = Some(100_000);
    reg.announce(at(2), &big, &mut out).expect("accepted");
    assert_eq!(out.len(), 200);
    assert_eq!(out.peer_ids().len(), 200, "ids collected on request");
    assert!(!out.peer_ids().contains(&pid(7)));
    big.numwant = Some(0);
    reg.announce(at(2), &big, &mut out).expect("accepted");
    assert!(out.is_empty());
}

#[test]
fn every_peer_of_a_500_peer_swarm_is_handed_out_over_many_announces() {
    let mut reg = Registry::new(config(), 3);
    for n in 0..500 {
        run(&mut reg, at(0), &announce(1, n, 10, Event::Started));
    }
    let mut seen: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    // One peer re-announcing 100 times: 5,000 handed out, 10 per peer on average.
    for round in 0..100 {
        let (_, peers) = run(&mut reg, at(round), &announce(1, 0, 10, Event::None));
        assert_eq!(peers.len(), 50);
        for p in peers {
            *seen.entry(p).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 499, "every peer but the asker handed out");
    // Not always the same few: nobody got more than 3 times its share.
    let most = seen.values().max().copied().unwrap_or(0);
    assert!(most <= 30, "one peer handed out {most} times of 100");
}

#[test]
fn seeders_get_leechers_first() {
    let mut reg = Registry::new(config(), 4);
    for n in 0..100 {
        run(&mut reg, at(0), &announce(1, n, 0, Event::Started)); // seeders
    }
    for n in 100..130 {
        run(&mut reg, at(0), &announce(1, n, 5, Event::Started)); // leechers
    }
    let leechers: BTreeSet<_> = (100..130).map(addr).collect();
    let (counts, peers) = run(&mut reg, at(1), &announce(1, 0, 0, Event::None));
    assert_eq!((counts.complete, counts.incomplete), (100, 30));
    assert_eq!(peers.len(), 50);
    let first: BTreeSet<_> = peers[..30].iter().copied().collect();
    assert_eq!(first, leechers, "all 30 leechers come first");
    assert!(
        peers[30..]
            .iter()
            .all(|p| !leechers.contains(p) && *p != addr(0))
    );
    // With more leechers than numwant, a seeder gets leechers only.
    for n in 130..200 {
        run(&mut reg, at(1), &announce(1, n, 5, Event::Started));
    }
    let (_, peers) = run(&mut reg, at(2), &announce(1, 1, 0, Event::None));
    assert!(peers.iter().all(|p| (100..200).map(addr).any(|l| l == *p)));
    // A leecher gets both kinds.
    let (_, peers) = run(&mut reg, at(2), &announce(1, 150, 5, Event::None));
    assert_eq!(peers.len(), 50);
}

#[test]
fn stopped_removes_at_once_and_completed_counts_once_per_peer() {
    let mut reg = Registry::new(config(), 5);
    run(&mut reg, at(0), &announce(1, 1, 100, Event::Started));
    run(&mut reg, at(0), &announce(1, 2, 100, Event::Started));
    let (c, _) = run(&mut reg, at(10), &announce(1, 1, 0, Event::Completed));
    assert_eq!((c.complete, c.incomplete, c.downloaded), (1, 1, 1));
    // A repeated `completed` from the same peer does not count again.
    let (c, _) = run(&mut reg, at(20), &announce(1, 1, 0, Event::Completed));
    assert_eq!(c.downloaded, 1);
    let (c, _) = run(&mut reg, at(30), &announce(1, 2, 0, Event::Completed));
    assert_eq!((c.complete, c.incomplete, c.downloaded), (2, 0, 2));
    // `stopped` removes the peer at once and gets no peers.
    let (c, peers) = run(&mut reg, at(40), &announce(1, 1, 0, Event::Stopped));
    assert_eq!((c.complete, c.incomplete, c.downloaded), (1, 0, 2));
    assert!(peers.is_empty());
    // A stop for an unknown peer or torrent changes nothing.
    run(&mut reg, at(41), &announce(1, 9, 0, Event::Stopped));
    run(&mut reg, at(41), &announce(2, 9, 0, Event::Stopped));
    assert_eq!((reg.swarms_len(), reg.peers_len()), (1, 1));
    // Another address with the same peer id is another peer: it cannot stop peer 2.
    let mut spoof = announce(1, 2, 0, Event::Stopped);
    spoof.addr = addr(77);
    run(&mut reg, at(42), &spoof);
    assert_eq!(reg.scrape(&hash(1)).complete, 1);
    assert_eq!(
        reg.scrape(&hash(1)),
        SwarmCounts {
            complete: 1,
            incomplete: 0,
            downloaded: 2
        }
    );
}

#[test]
fn a_peer_is_its_address_and_a_leecher_again_moves_back() {
    let mut reg = Registry::new(config(), 6);
    run(&mut reg, at(0), &announce(1, 1, 0, Event::Started));
    // Same address, a new peer id (a restarted client), a leecher again.
    let mut again = announce(1, 1, 10, Event::None);
    again.peer_id = pid(1001);
    let (c, _) = run(&mut reg, at(1), &again);
    assert_eq!((c.complete, c.incomplete), (0, 1), "the same peer, moved");
    let mut out = AnnouncePeers::new(true);
    reg.announce(at(2), &announce(1, 2, 10, Event::Started), &mut out)
        .expect("accepted");
    assert_eq!(out.peer_ids(), &[pid(1001)], "the new id is handed out");
    // Another port on the same IP is another peer.
    let mut other_port = announce(1, 1, 10, Event::Started);
    other_port.addr.set_port(7000);
    let (c, peers) = run(&mut reg, at(3), &other_port);
    assert_eq!(c.incomplete, 3);
    assert_eq!(peers.len(), 2);
}

#[test]
fn ipv6_peers_get_ipv6_peers_and_mapped_v4_is_v4() {
    let mut reg = Registry::new(config(), 7);
    let v6 = |n: u16| SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n)), 5000);
    for n in 1..=3u16 {
        let mut a = announce(1, u32::from(n), 10, Event::Started);
        a.addr = v6(n);
        run(&mut reg, at(0), &a);
    }
    run(&mut reg, at(0), &announce(1, 10, 10, Event::Started));
    let mut a = announce(1, 4, 10, Event::Started);
    a.addr = v6(4);
    let mut out = AnnouncePeers::new(false);
    let reply = reg.announce(at(1), &a, &mut out).expect("accepted");
    assert!(out.is_v6());
    assert_eq!(out.compact().len(), 3 * 18);
    assert_eq!(reply.incomplete, 5, "counts cover both families");
    // ::ffff:10.0.0.11 is the IPv4 peer 10.0.0.11.
    let mut mapped = announce(1, 11, 10, Event::Started);
    mapped.addr = SocketAddr::new(
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 11).to_ipv6_mapped()),
        7001,
    );
    let (_, peers) = run(&mut reg, at(2), &mapped);
    assert_eq!(peers, vec![addr(10)]);
    assert_eq!(reg.sizes().peers_v6, 4);
}

#[test]
fn limits_refuse_with_a_reason_and_leave_the_registry_unchanged() {
    let config = RegistryConfig {
        swarms_max: 2,
        peers_max: 5,
        swarm_peers_max: 3,
        ..config()
    };
    let mut reg = Registry::new(config, 8);
    let mut out = AnnouncePeers::new(false);
    for n in 0..3 {
        run(&mut reg, at(0), &announce(1, n, 10, Event::Started));
    }
    let before = (reg.sizes(), reg.scrape(&hash(1)));
    let refused = reg.announce(at(0), &announce(1, 3, 10, Event::Started), &mut out);
    assert_eq!(refused, Err(Refusal::SwarmFull));
    assert!(refused.unwrap_err().to_string().contains("too many peers"));
    run(&mut reg, at(0), &announce(2, 10, 10, Event::Started));
    assert_eq!(
        reg.announce(at(0), &announce(3, 20, 10, Event::Started), &mut out),
        Err(Refusal::SwarmsFull)
    );
    run(&mut reg, at(0), &announce(2, 11, 10, Event::Started));
    assert_eq!(
        reg.announce(at(0), &announce(2, 12, 10, Event::Started), &mut out),
        Err(Refusal::PeersFull)
    );
    // Known peers are still served at the limits.
    let (_, peers) = run(&mut reg, at(1), &announce(1, 0, 10, Event::None));
    assert_eq!(peers.len(), 2);
    assert_eq!(before.1, reg.scrape(&hash(1)));
    assert_eq!(reg.sizes().swarms, before.0.swarms + 1);
    // Port 0 is refused.
    let mut zero = announce(2, 13, 10, Event::Started);
    zero.addr.set_port(0);
    assert_eq!(reg.announce(at(1), &zero, &mut out), Err(Refusal::PortZero));
    reg.check_invariants();
    assert_eq!(reg.peers_len(), 5);
}

#[test]
fn a_flood_of_random_hashes_and_ids_stays_within_the_memory_bound() {
    let config = RegistryConfig {
        swarms_max: 5_000,
        peers_max: 20_000,
        ..config()
    };
    let bound = config.memory_bound_bytes();
    let mut reg = Registry::new(config, 9);
    // A real swarm first.
    for n in 0..10 {
        run(&mut reg, at(0), &announce(0, n, 10, Event::Started));
    }
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = AnnouncePeers::new(false);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..100_000u32 {
        let r = next();
        // Half new info-hashes, half new peer ids in a few hot swarms.
        let torrent = if i % 2 == 0 {
            r as u32
        } else {
            1 + (r % 4) as u32
        };
        let mut a = announce(torrent, (r >> 32) as u32, r % 3, Event::Started);
        a.info_hash.0[8..16].copy_from_slice(&r.to_le_bytes());
        if i % 2 == 1 {
            a.info_hash = hash(torrent);
        }
        match reg.announce(at(1), &a, &mut out) {
            Ok(_) => accepted += 1,
            Err(Refusal::SwarmsFull | Refusal::PeersFull | Refusal::SwarmFull) => refused += 1,
            Err(e) => panic!("unexpected refusal {e}"),
        }
    }
    reg.check_invariants();
    assert!(reg.swarms_len() <= 5_000 && reg.peers_len() <= 20_000);
    assert!(
        refused > 50_000,
        "the flood was refused ({accepted} accepted)"
    );
    assert!(
        reg.memory_bytes() <= bound,
        "{} bytes held, bound {bound}",
        reg.memory_bytes()
    );
    // The real swarm is still served, and the flood expires.
    let (c, peers) = run(&mut reg, at(2), &announce(0, 0, 10, Event::None));
    assert_eq!((c.incomplete, peers.len()), (10, 9));
    reg.expire(at(2 + 3601));
    assert_eq!(reg.peers_len(), 0);
    run(&mut reg, at(3610), &announce(7, 1, 10, Event::Started));
}

#[test]
fn the_same_seed_replays_the_same_answers() {
    let answers = |seed| {
        let mut reg = Registry::new(config(), seed);
        let mut all = Vec::new();
        for n in 0..200 {
            all.push(
                run(
                    &mut reg,
                    at(u64::from(n)),
                    &announce(n % 3, n, u64::from(n % 2), Event::None),
                )
                .1,
            );
        }
        all
    };
    assert_eq!(answers(11), answers(11));
    assert_ne!(answers(11), answers(12));
}

#[derive(Clone, Debug)]
enum Op {
    Announce {
        torrent: u8,
        peer: u8,
        seeder: bool,
        event: u8,
        numwant: u8,
    },
    Advance(u16),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..4, 0u8..40, any::<bool>(), 0u8..4, 0u8..60).prop_map(
            |(torrent, peer, seeder, event, numwant)| Op::Announce { torrent, peer, seeder, event, numwant }
        ),
        1 => (0u16..2000).prop_map(Op::Advance),
        1 => Just(Op::Expire),
    ]
}

proptest! {
    /// Any sequence of announces, clock steps and expiries keeps the
    /// invariants, and the counts agree with a plain model.
    #[test]
    fn random_operations_keep_the_invariants(ops in prop::collection::vec(op(), 1..300)) {
        let config = RegistryConfig { swarms_max: 3, peers_max: 60, swarm_peers_max: 25, ..RegistryConfig::with_interval(600) };
        let mut reg = Registry::new(config, 42);
        // (torrent, peer) -> (seeder, last seen s)
        let mut model: BTreeMap<(u8, u8), (bool, u64)> = BTreeMap::new();
        let mut now = 0u64;
        let mut out = AnnouncePeers::new(false);
        for op in ops {
            match op {
                Op::Announce { torrent, peer, seeder, event, numwant } => {
                    let event = [Event::None, Event::Started, Event::Completed, Event::Stopped][event as usize];
                    let mut a = announce(u32::from(torrent), u32::from(peer), u64::from(!seeder), event);
                    a.numwant = Some(u32::from(numwant));
                    let result = reg.announce(at(now), &a, &mut out);
                    match result {
                        Ok(reply) => {
                            if event == Event::Stopped {
                                model.remove(&(torrent, peer));
                                prop_assert!(out.is_empty());
                            } else {
                                model.insert((torrent, peer), (seeder, now));
                                let others = model.keys().filter(|(t, p)| *t == torrent && *p != peer).count();
                                prop_assert_eq!(out.len(), others.min(usize::from(numwant)));
                                prop_assert!(!out.addrs().any(|a| a == addr(u32::from(peer))));
                            }
                            let seeders = model.iter().filter(|((t, _), (s, _))| *t == torrent && *s).count();
                            let leechers = model.iter().filter(|((t, _), (s, _))| *t == torrent && !*s).count();
                            prop_assert_eq!((reply.complete as usize, reply.incomplete as usize), (seeders, leechers));
                        }
                        Err(_) => prop_assert!(!model.contains_key(&(torrent, peer)), "a known peer was refused"),
                    }
                }
                Op::Advance(s) => now += u64::from(s),
                Op::Expire => {
                    reg.expire(at(now));
                    model.retain(|_, (_, seen)| now - *seen <= 1200);
                }
            }
            reg.check_invariants();
            prop_assert_eq!(reg.peers_len(), model.len());
        }
    }
}
