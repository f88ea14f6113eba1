//! Endpoint tests: a fake clock (`Instant`s we pass in) and fixed seeds.

use super::*;

const OURS: PeerId = PeerId(*b"-SW0001-mmmmmmmmmmmm");
const T1: InfoHash = InfoHash([1; 20]);
const T2: InfoHash = InfoHash([2; 20]);

fn at(secs: u64) -> Instant {
    Instant(secs * 1_000_000)
}

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], port))
}

fn peer_id(n: u8) -> PeerId {
    let mut id = *b"-XX0001-000000000000";
    id[19] = n;
    PeerId(id)
}

fn endpoint(config: EndpointConfig) -> Endpoint {
    let mut e = Endpoint::new(config, OURS, 7);
    e.add_torrent(at(0), T1).unwrap();
    e
}

/// Drains the actions, checking the invariants first.
fn drain(e: &mut Endpoint) -> Vec<Action> {
    e.check_invariants();
    std::iter::from_fn(|| e.poll_action()).collect()
}

fn dials(actions: &[Action]) -> Vec<(PeerKey, SocketAddr)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dial { conn, addr, .. } => Some((*conn, *addr)),
            _ => None,
        })
        .collect()
}

fn closes(actions: &[Action]) -> Vec<(PeerKey, Refusal)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { conn, reason } => Some((*conn, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn adding_announces_and_a_peer_is_dialled_at_once() {
    let mut e = endpoint(EndpointConfig::default());
    assert_eq!(
        drain(&mut e),
        vec![Action::Announce {
            torrent: T1,
            event: AnnounceEvent::Started
        }]
    );
    e.handle_peers(at(0), T1, PeerSource::Tracker, [addr(2, 6881)]);
    let d = dials(&drain(&mut e));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, addr(2, 6881));
    assert_eq!(e.add_torrent(at(0), T1), Err(AddError::AlreadyAdded));
}

#[test]
fn failed_dials_back_off_exponentially_then_the_candidate_is_dropped() {
    let config = EndpointConfig::default();
    let mut e = endpoint(config.clone());
    drain(&mut e);
    e.handle_peers(at(0), T1, PeerSource::Tracker, [addr(2, 6881)]);
    let mut now = at(0);
    let mut conn = dials(&drain(&mut e))[0].0;
    for failure in 1..config.dial_failures_max {
        e.handle_closed(now, conn);
        assert!(
            dials(&drain(&mut e)).is_empty(),
            "no redial before the back-off"
        );
        let next = e.poll_timeout().expect("a retry is scheduled");
        let backoff = config.dial_backoff_base.0 << (failure - 1);
        let wait = next.0 - now.0;
        assert!(
            (backoff..=backoff + backoff / 4).contains(&wait),
            "failure {failure}: waited {wait} us, back-off {backoff} us (+25% jitter)"
        );
        // Just before: nothing; at the time: a new dial.
        e.handle_timeout(Instant(next.0 - 1));
        assert!(dials(&drain(&mut e)).is_empty());
        now = next;
        e.handle_timeout(now);
        let d = dials(&drain(&mut e));
        assert_eq!(d.len(), 1, "failure {failure}: redialled");
        conn = d[0].0;
    }
    e.handle_closed(now, conn);
    drain(&mut e);
    assert_eq!(e.torrent_connections(&T1).unwrap().candidates, 0, "dropped");
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn user_named_peers_are_retried_for_ever_with_a_capped_back_off() {
    let config = EndpointConfig {
        dial_backoff_max: Duration::from_secs(60),
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    drain(&mut e);
    e.handle_peers(at(0), T1, PeerSource::Cli, [addr(2, 6881)]);
    let mut now = at(0);
    let mut conn = dials(&drain(&mut e))[0].0;
    for _ in 0..20 {
        e.handle_closed(now, conn);
        drain(&mut e);
        let next = e.poll_timeout().unwrap();
        assert!(next.0 - now.0 <= 75_000_000, "capped at 60 s + 25%");
        now = next;
        e.handle_timeout(now);
        conn = dials(&drain(&mut e))[0].0;
    }
    assert_eq!(e.torrent_connections(&T1).unwrap().candidates, 1);
}

#[test]
fn a_closed_connection_is_redialled_after_the_reconnect_delay() {
    let config = EndpointConfig::default();
    let mut e = endpoint(config.clone());
    drain(&mut e);
    e.handle_peers(at(0), T1, PeerSource::Tracker, [addr(2, 6881)]);
    let conn = dials(&drain(&mut e))[0].0;
    e.handle_handshake(at(1), conn, T1, peer_id(2)).unwrap();
    e.handle_closed(at(100), conn);
    drain(&mut e);
    assert_eq!(e.poll_timeout(), Some(at(100) + config.reconnect_delay));
}

#[test]
fn dials_in_flight_torrent_and_global_caps_hold() {
    let config = EndpointConfig {
        dials_max: 4,
        torrent_connections_max: 6,
        connections_max: 10,
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    e.add_torrent(at(0), T2).unwrap();
    drain(&mut e);
    let many = |base: u8| (0..50).map(move |i| SocketAddr::from(([127, base, 0, i], 6881)));
    e.handle_peers(at(0), T1, PeerSource::Tracker, many(2));
    e.handle_peers(at(0), T2, PeerSource::Dht, many(3));
    let mut id = 0;
    let mut established = 0;
    let mut now = at(0);
    for _ in 0..40 {
        let d = dials(&drain(&mut e));
        assert!(d.len() <= 4, "at most 4 dials in flight");
        if d.is_empty() {
            now = now + Duration::from_secs(1);
            e.handle_timeout(now);
            if dials(&drain(&mut e)).is_empty() {
                break;
            }
            continue;
        }
        for (conn, a) in d {
            id += 1;
            let torrent = if a.to_string().starts_with("127.2.") {
                T1
            } else {
                T2
            };
            e.handle_handshake(now, conn, torrent, peer_id(id)).unwrap();
            established += 1;
        }
    }
    let c1 = e.torrent_connections(&T1).unwrap();
    let c2 = e.torrent_connections(&T2).unwrap();
    assert_eq!(established, 10, "global cap");
    assert_eq!(c1.connected + c2.connected, 10);
    assert!(
        c1.connected <= 6 && c2.connected <= 6,
        "per torrent: {c1:?} {c2:?}"
    );
    assert_eq!(e.connections(), 10);
    // Full: an incoming connection is refused at accept.
    assert_eq!(
        e.handle_accept(now, addr(9, 5000)),
        Err(Refusal::ConnectionsFull)
    );
}

#[test]
fn incoming_handshakes_have_their_own_cap_and_a_deadline() {
    let config = EndpointConfig {
        handshakes_max: 8,
        handshake_timeout: Duration::from_secs(3),
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    drain(&mut e);
    let mut accepted: Vec<PeerKey> = (0..8)
        .map(|i| e.handle_accept(at(0), addr(10 + i, 5000)).unwrap())
        .collect();
    // All 8 slots taken: a newcomer replaces the oldest (the cap holds).
    let newcomer = e.handle_accept(at(0), addr(50, 5000)).unwrap();
    assert_eq!(
        closes(&drain(&mut e)),
        vec![(accepted[0], Refusal::HandshakesFull)]
    );
    accepted[0] = newcomer;
    // The silent ones are closed at their deadline, not before.
    e.handle_timeout(at(2));
    assert!(closes(&drain(&mut e)).is_empty());
    assert_eq!(e.poll_timeout(), Some(at(3)));
    e.handle_timeout(at(3));
    let closed = closes(&drain(&mut e));
    assert_eq!(closed.len(), 8);
    assert!(
        closed
            .iter()
            .all(|(k, r)| accepted.contains(k) && *r == Refusal::HandshakeTimeout)
    );
    assert!(
        e.handle_accept(at(3), addr(51, 5000)).is_ok(),
        "slots are back"
    );
}

#[test]
fn one_ip_cannot_take_every_slot() {
    let config = EndpointConfig {
        ip_connections_max: 3,
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    drain(&mut e);
    for i in 0..3 {
        let k = e.handle_accept(at(0), addr(66, 5000 + i)).unwrap();
        e.handle_handshake(at(0), k, T1, peer_id(i as u8)).unwrap();
    }
    assert_eq!(e.handle_accept(at(0), addr(66, 6000)), Err(Refusal::IpFull));
    assert!(
        e.handle_accept(at(0), addr(67, 6000)).is_ok(),
        "another address still gets in"
    );
    // Nor do our dials to that address go past the cap.
    e.handle_peers(at(0), T1, PeerSource::Tracker, [addr(66, 6881)]);
    assert!(dials(&drain(&mut e)).is_empty());
}

#[test]
fn handshakes_for_unknown_or_stopped_torrents_and_from_ourselves_are_refused() {
    let mut e = endpoint(EndpointConfig::default());
    e.add_torrent(at(0), T2).unwrap();
    drain(&mut e);
    let k = e.handle_accept(at(0), addr(2, 5000)).unwrap();
    assert_eq!(
        e.handle_handshake(at(0), k, InfoHash([9; 20]), peer_id(1)),
        Err(Refusal::UnknownTorrent)
    );
    assert_eq!(e.connections(), 0, "a refused connection is forgotten");
    let k = e.handle_accept(at(0), addr(2, 5001)).unwrap();
    assert_eq!(
        e.handle_handshake(at(0), k, T1, OURS),
        Err(Refusal::SelfConnection)
    );

    let k = e.handle_accept(at(0), addr(3, 5000)).unwrap();
    e.handle_handshake(at(0), k, T2, peer_id(3)).unwrap();
    e.stop_torrent(at(1), T2);
    let a = drain(&mut e);
    assert_eq!(closes(&a), vec![(k, Refusal::TorrentStopped)]);
    assert!(a.contains(&Action::Announce {
        torrent: T2,
        event: AnnounceEvent::Stopped
    }));
    let k = e.handle_accept(at(2), addr(3, 5001)).unwrap();
    assert_eq!(
        e.handle_handshake(at(2), k, T2, peer_id(3)),
        Err(Refusal::TorrentStopped)
    );
    e.remove_torrent(at(3), T2);
    let k = e.handle_accept(at(3), addr(3, 5002)).unwrap();
    assert_eq!(
        e.handle_handshake(at(3), k, T2, peer_id(3)),
        Err(Refusal::UnknownTorrent)
    );
    e.check_invariants();
}

#[test]
fn duplicates_keep_the_connection_dialled_by_the_smaller_id() {
    // Their id is smaller than ours ("-XX" < "-SW" is false: 'X' > 'S'), so
    // make one smaller and one larger.
    let smaller = PeerId(*b"-AA0001-000000000000");
    let larger = PeerId(*b"-ZZ0001-000000000000");
    for (theirs, keep_ours) in [(smaller, false), (larger, true)] {
        let mut e = endpoint(EndpointConfig::default());
        drain(&mut e);
        e.handle_peers(at(0), T1, PeerSource::Tracker, [addr(2, 6881)]);
        let ours = dials(&drain(&mut e))[0].0;
        e.handle_handshake(at(1), ours, T1, theirs).unwrap();
        let theirs_conn = e.handle_accept(at(1), addr(2, 40000)).unwrap();
        let verdict = e.handle_handshake(at(1), theirs_conn, T1, theirs);
        let a = drain(&mut e);
        if keep_ours {
            assert_eq!(verdict, Err(Refusal::Duplicate));
            assert!(closes(&a).is_empty());
        } else {
            assert_eq!(verdict, Ok(()));
            assert_eq!(closes(&a), vec![(ours, Refusal::Duplicate)]);
        }
        assert_eq!(e.torrent_connections(&T1).unwrap().connected, 1);
    }
    // Two incoming with the same id: the older stays.
    let mut e = endpoint(EndpointConfig::default());
    let a = e.handle_accept(at(0), addr(2, 1)).unwrap();
    e.handle_handshake(at(0), a, T1, smaller).unwrap();
    let b = e.handle_accept(at(0), addr(3, 1)).unwrap();
    assert_eq!(
        e.handle_handshake(at(0), b, T1, smaller),
        Err(Refusal::Duplicate)
    );
    // The same peer id on another torrent is no duplicate.
    e.add_torrent(at(0), T2).unwrap();
    let c = e.handle_accept(at(0), addr(3, 2)).unwrap();
    assert_eq!(e.handle_handshake(at(0), c, T2, smaller), Ok(()));
    e.check_invariants();
}

#[test]
fn a_ban_closes_refuses_and_forgets_the_address() {
    let mut e = endpoint(EndpointConfig::default());
    drain(&mut e);
    let bad = addr(66, 6881);
    e.handle_peers(
        at(0),
        T1,
        PeerSource::Tracker,
        [bad, addr(66, 6882), addr(2, 6881)],
    );
    let d = dials(&drain(&mut e));
    assert_eq!(d.len(), 3);
    let k = d.iter().find(|(_, a)| *a == bad).unwrap().0;
    e.handle_handshake(at(1), k, T1, peer_id(1)).unwrap();
    e.ban(at(2), bad.ip());
    let closed = closes(&drain(&mut e));
    assert_eq!(closed.len(), 2, "both connections to the IP");
    assert!(closed.iter().all(|(_, r)| *r == Refusal::Banned));
    assert_eq!(e.torrent_connections(&T1).unwrap().candidates, 1);
    assert_eq!(e.handle_accept(at(3), addr(66, 1234)), Err(Refusal::Banned));
    e.handle_peers(at(3), T1, PeerSource::Pex, [bad]);
    assert!(dials(&drain(&mut e)).is_empty());
    assert_eq!(e.torrent_connections(&T1).unwrap().candidates, 1);
}

#[test]
fn bans_are_bounded_oldest_forgotten_first() {
    let config = EndpointConfig {
        bans_max: 3,
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    for i in 0..5 {
        e.ban(at(0), addr(10 + i, 0).ip());
    }
    assert!(!e.is_banned(addr(10, 0).ip()) && !e.is_banned(addr(11, 0).ip()));
    assert!((12..15).all(|i| e.is_banned(addr(i, 0).ip())));
    e.check_invariants();
}

#[test]
fn a_million_addresses_are_cut_to_the_candidate_bound() {
    let config = EndpointConfig {
        candidates_max: 1_000,
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config.clone());
    drain(&mut e);
    let million = (0..1_000_000u32).map(|i| {
        let b = i.to_be_bytes();
        SocketAddr::from(([10, b[1], b[2], b[3]], 6881))
    });
    e.handle_peers(at(0), T1, PeerSource::Dht, million);
    assert_eq!(e.torrent_connections(&T1).unwrap().candidates, 1_000);
    assert_eq!(dials(&drain(&mut e)).len(), config.dials_max);
}

#[test]
fn failed_candidates_make_room_for_new_ones() {
    let config = EndpointConfig {
        candidates_max: 4,
        dials_max: 4,
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    drain(&mut e);
    e.handle_peers(at(0), T1, PeerSource::Tracker, (1..=4).map(|i| addr(i, 1)));
    let d = dials(&drain(&mut e));
    // Two fail; the list is full, so new addresses replace those two only.
    e.handle_closed(at(1), d[0].0);
    e.handle_closed(at(1), d[1].0);
    e.handle_peers(at(1), T1, PeerSource::Pex, (5..=9).map(|i| addr(i, 1)));
    let c = e.torrent_connections(&T1).unwrap();
    assert_eq!(c.candidates, 4);
    let d2 = dials(&drain(&mut e));
    let dialled: Vec<SocketAddr> = d2.iter().map(|x| x.1).collect();
    assert_eq!(dialled, vec![addr(5, 1), addr(6, 1)]);
}

#[test]
fn stopping_and_resuming_keeps_candidates() {
    let mut e = endpoint(EndpointConfig::default());
    drain(&mut e);
    e.handle_peers(at(0), T1, PeerSource::Tracker, [addr(2, 1), addr(3, 1)]);
    let d = dials(&drain(&mut e));
    e.stop_torrent(at(1), T1);
    assert_eq!(closes(&drain(&mut e)).len(), d.len());
    assert_eq!(e.poll_timeout(), None, "nothing to do while stopped");
    e.resume_torrent(at(2), T1);
    assert_eq!(dials(&drain(&mut e)).len(), 2);
}

/// A scripted run with random inputs drawn from `seed`: the actions.
fn scripted_run(seed: u64) -> Vec<Action> {
    let config = EndpointConfig {
        dials_max: 3,
        torrent_connections_max: 5,
        ip_connections_max: 2,
        ..EndpointConfig::default()
    };
    let mut e = Endpoint::new(config, OURS, seed);
    let mut input = Rng::new(99);
    let mut log = Vec::new();
    let mut open: Vec<PeerKey> = Vec::new();
    e.add_torrent(at(0), T1).unwrap();
    e.add_torrent(at(0), T2).unwrap();
    for step in 0..2_000u64 {
        let now = Instant(step * 250_000);
        let torrent = if input.below(2) == 0 { T1 } else { T2 };
        match input.below(6) {
            0 => e.handle_peers(
                now,
                torrent,
                PeerSource::Tracker,
                (0..5).map(|_| addr(input.below(20) as u8, 6881)),
            ),
            1 => {
                if let Ok(k) =
                    e.handle_accept(now, addr(input.below(20) as u8, 40000 + step as u16))
                {
                    open.push(k);
                }
            }
            2 if !open.is_empty() => {
                let k = open.swap_remove(input.below(open.len()));
                let _ = e.handle_handshake(now, k, torrent, peer_id(input.below(30) as u8));
            }
            3 if !open.is_empty() => {
                let k = open.swap_remove(input.below(open.len()));
                e.handle_closed(now, k);
            }
            4 if input.below(20) == 0 => e.ban(now, addr(input.below(20) as u8, 0).ip()),
            _ => e.handle_timeout(now),
        }
        for a in drain(&mut e) {
            if let Action::Dial { conn, .. } = a {
                open.push(conn);
            }
            log.push(a);
        }
    }
    log
}

#[test]
fn the_same_seed_gives_the_same_actions() {
    let a = scripted_run(1);
    assert!(a.len() > 50, "the run does something: {} actions", a.len());
    assert_eq!(a, scripted_run(1));
    assert_ne!(a, scripted_run(2), "the seed matters (back-off jitter)");
}

#[test]
fn a_dial_that_reaches_ourselves_drops_the_candidate() {
    let mut e = endpoint(EndpointConfig::default());
    drain(&mut e);
    e.handle_peers(at(0), T1, PeerSource::Tracker, [addr(1, 6881)]);
    let d = dials(&drain(&mut e));
    assert_eq!(e.candidate_failures(&T1, addr(1, 6881)), Some(0));
    assert_eq!(
        e.handle_handshake(at(0), d[0].0, T1, OURS),
        Err(Refusal::SelfConnection)
    );
    assert_eq!(e.candidate_failures(&T1, addr(1, 6881)), None);
    e.handle_timeout(at(1000));
    assert!(dials(&drain(&mut e)).is_empty(), "never dialled again");
}

fn peer_id_wide(n: u32) -> PeerId {
    let mut id = *b"-XX0001-000000000000";
    id[16..20].copy_from_slice(&n.to_be_bytes());
    PeerId(id)
}

/// Accepts a connection from `from` and its handshake for `torrent`.
fn connect_in(
    e: &mut Endpoint,
    now: Instant,
    from: SocketAddr,
    torrent: InfoHash,
    id: PeerId,
) -> Result<PeerKey, Refusal> {
    let k = e.handle_accept(now, from)?;
    e.handle_handshake(now, k, torrent, id).map(|()| k)
}

/// The case: idle connections fill all 50 slots of a seeder (as
/// many addresses as the per-IP cap needs). A real leecher knocking while
/// they are fresh waits (refused, it retries); once they have been idle for
/// `idle_timeout` its knock evicts the one idle longest, not one making
/// progress.
#[test]
fn an_idle_connection_makes_room_for_a_newcomer_when_the_torrent_is_full() {
    let config = EndpointConfig::default();
    let (slots, per_ip) = (config.torrent_connections_max, config.ip_connections_max);
    let mut e = endpoint(config.clone());
    drain(&mut e);
    let mut idle = Vec::new();
    for i in 0..slots {
        let from = addr(10 + (i / per_ip) as u8, 5000 + i as u16);
        let at_s = i as u64 / 10; // connected over 5 s
        idle.push(connect_in(&mut e, at(at_s), from, T1, peer_id_wide(i as u32)).unwrap());
    }
    assert_eq!(e.torrent_connections(&T1).unwrap().connected, slots);
    // One of them is busy (a block moved at 19 s): never the victim.
    e.handle_progress(at(19), idle[0]);
    let leecher = addr(99, 7000);
    assert_eq!(
        connect_in(&mut e, at(10), leecher, T1, peer_id(200)),
        Err(Refusal::TorrentFull),
        "nobody idle for 20 s yet"
    );
    assert!(closes(&drain(&mut e)).is_empty());
    let k = connect_in(&mut e, at(21), leecher, T1, peer_id(200)).expect("evicts an idle one");
    let closed = closes(&drain(&mut e));
    assert_eq!(
        closed,
        vec![(idle[1], Refusal::Idle)],
        "the idle one with the oldest progress"
    );
    assert_eq!(e.torrent_connections(&T1).unwrap().connected, slots);
    // The newcomer has a fresh grace: the next knock takes another idle one.
    connect_in(&mut e, at(21), addr(98, 7000), T1, peer_id(201)).unwrap();
    let closed = closes(&drain(&mut e));
    assert_eq!(closed.len(), 1);
    assert!(closed[0].0 != k && closed[0].0 != idle[0], "{closed:?}");
}

/// An address that reconnects at once after each drop (or a set of them)
/// cannot push out a peer that makes progress: over 200 s of such churn
/// the real leecher stays connected, and every eviction hits an idle one.
#[test]
fn reconnecting_after_each_drop_never_evicts_a_busy_peer() {
    let config = EndpointConfig {
        torrent_connections_max: 10,
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    drain(&mut e);
    let leecher = connect_in(&mut e, at(0), addr(99, 7000), T1, peer_id(200)).unwrap();
    let mut next_id = 0u32;
    let mut attacker = |e: &mut Endpoint, now| {
        next_id += 1;
        let from = addr(10 + (next_id % 8) as u8, 5000 + (next_id % 1000) as u16);
        connect_in(e, now, from, T1, peer_id_wide(next_id))
    };
    for _ in 0..9 {
        attacker(&mut e, at(0)).unwrap();
    }
    let mut evictions = 0;
    for s in 1..=200 {
        let now = at(s);
        e.handle_progress(now, leecher);
        e.handle_timeout(now);
        // The attackers knock every second; each one let in evicts another.
        if attacker(&mut e, now).is_ok() {
            let closed = closes(&drain(&mut e));
            assert_eq!(closed.len(), 1);
            assert_ne!(
                closed[0].0, leecher,
                "the busy leecher was evicted at {s} s"
            );
            assert_eq!(closed[0].1, Refusal::Idle);
            evictions += 1;
        }
        drain(&mut e);
    }
    assert!(
        evictions > 10,
        "the idle ones churn among themselves: {evictions}"
    );
    assert_eq!(e.torrent_connections(&T1).unwrap().connected, 10);
}

/// A full torrent whose peers all make progress refuses newcomers.
#[test]
fn busy_peers_are_never_evicted() {
    let config = EndpointConfig {
        torrent_connections_max: 3,
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    drain(&mut e);
    let ks: Vec<PeerKey> = (0..3)
        .map(|i| connect_in(&mut e, at(0), addr(10 + i, 5000), T1, peer_id(i)).unwrap())
        .collect();
    for s in 1..=60 {
        for &k in &ks {
            e.handle_progress(at(s), k);
        }
    }
    assert_eq!(
        connect_in(&mut e, at(60), addr(99, 7000), T1, peer_id(50)),
        Err(Refusal::TorrentFull)
    );
    assert!(closes(&drain(&mut e)).is_empty());
}

/// With the whole process full, an idle connection of one torrent makes
/// room for a newcomer to another: not refused at accept, evicted at its
/// handshake. Progress on a connection still in its handshake changes
/// nothing (its deadline is absolute: a handshake sent byte by byte is
/// closed at it all the same).
#[test]
fn the_global_cap_evicts_an_idle_connection_of_any_torrent() {
    let config = EndpointConfig {
        connections_max: 4,
        handshake_timeout: Duration::from_secs(3),
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    e.add_torrent(at(0), T2).unwrap();
    drain(&mut e);
    let ks: Vec<PeerKey> = (0..4)
        .map(|i| connect_in(&mut e, at(0), addr(10 + i, 5000), T1, peer_id(i)).unwrap())
        .collect();
    for &k in &ks[1..] {
        e.handle_progress(at(25), k);
    }
    assert_eq!(
        e.handle_accept(at(5), addr(99, 7000)),
        Err(Refusal::ConnectionsFull)
    );
    let slow = e
        .handle_accept(at(25), addr(98, 7000))
        .expect("room by eviction");
    e.handle_progress(at(26), slow);
    e.handle_progress(at(27), slow);
    e.handle_timeout(at(28));
    assert_eq!(
        closes(&drain(&mut e)),
        vec![(slow, Refusal::HandshakeTimeout)]
    );
    let k = e.handle_accept(at(30), addr(99, 7000)).unwrap();
    e.handle_handshake(at(30), k, T2, peer_id(60)).unwrap();
    assert_eq!(closes(&drain(&mut e)), vec![(ks[0], Refusal::Idle)]);
    assert_eq!(e.torrent_connections(&T2).unwrap().connected, 1);
    assert_eq!(e.connections(), 4);
}

/// A flood of silent sockets from many addresses cannot hold the door
/// shut: each newcomer takes the slot of the oldest pending handshake, so
/// a real peer that knocks in the middle of it gets its handshake read
/// (it sends it within a round trip) and gets in.
#[test]
fn a_silent_flood_cannot_hold_the_handshake_slots() {
    let config = EndpointConfig {
        handshakes_max: 64,
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    drain(&mut e);
    let mut now = Instant(0);
    for i in 0..1000u32 {
        now = Instant(u64::from(i) * 2_000); // 500 a second
        let from = SocketAddr::from(([127, 1, (i % 200) as u8, 1], 5000));
        e.handle_accept(now, from)
            .expect("a newcomer always gets a slot");
        drain(&mut e);
        if i == 500 {
            let real = e.handle_accept(now, addr(99, 7000)).unwrap();
            drain(&mut e);
            let rtt = now + Duration::from_millis(1);
            e.handle_handshake(rtt, real, T1, peer_id(1))
                .expect("the real peer gets in");
        }
    }
    assert_eq!(e.torrent_connections(&T1).unwrap().connected, 1);
    e.handle_timeout(now + Duration::from_secs(11));
    drain(&mut e);
    assert_eq!(
        e.connections(),
        1,
        "every silent one is gone by its deadline"
    );
}

#[test]
fn lowering_the_connection_cap_closes_the_excess_at_once_and_raising_it_dials_again() {
    let mut e = endpoint(EndpointConfig::default());
    drain(&mut e);
    e.handle_peers(
        at(0),
        T1,
        PeerSource::Tracker,
        (2..8).map(|i| addr(i, 6881)),
    );
    let first = dials(&drain(&mut e));
    assert_eq!(first.len(), 6);
    e.set_connections_max(at(1), 2);
    let closed = closes(&drain(&mut e));
    assert_eq!(closed.len(), 4, "{closed:?}");
    assert!(closed.iter().all(|(_, r)| *r == Refusal::ConnectionsFull));
    assert_eq!(e.connections_max(), 2);
    // Room again: the closed addresses are candidates once more (after
    // their reconnect delay), dialled within the new cap.
    e.set_connections_max(at(1), 10);
    e.handle_timeout(at(600));
    let again = dials(&drain(&mut e));
    assert!(!again.is_empty() && again.len() <= 4, "{again:?}");
}

#[test]
fn a_torrents_own_connection_cap_closes_its_excess_and_holds_for_new_dials() {
    let mut e = endpoint(EndpointConfig::default());
    e.add_torrent(at(0), T2).unwrap();
    drain(&mut e);
    for t in [T1, T2] {
        e.handle_peers(at(0), t, PeerSource::Tracker, (2..8).map(|i| addr(i, 6881)));
    }
    let first = dials(&drain(&mut e));
    assert_eq!(first.len(), 12);
    e.set_torrent_connections_max(at(1), T1, Some(2));
    let closed = closes(&drain(&mut e));
    assert_eq!(closed.len(), 4, "{closed:?}");
    assert!(closed.iter().all(|(_, r)| *r == Refusal::TorrentFull));
    assert_eq!(e.torrent_connections_max(T1), Some(2));
    assert_eq!(
        e.torrent_connections_max(T2),
        Some(50),
        "the other keeps the default"
    );
    assert_eq!(e.torrent_connections(&T2).unwrap().dialling, 6);
    // Later dials keep within it.
    e.handle_timeout(at(600));
    drain(&mut e);
    e.check_invariants();
    let t1 = e.torrent_connections(&T1).unwrap();
    assert!(t1.connected + t1.dialling <= 2, "{t1:?}");
    // Back to the default: dialled again.
    e.set_torrent_connections_max(at(601), T1, None);
    e.handle_timeout(at(1200));
    let again = dials(&drain(&mut e));
    assert!(!again.is_empty(), "{again:?}");
    assert_eq!(e.torrent_connections_max(T1), Some(50));
}

/// Everyone arrives at once: without a share kept for incoming peers each
/// fills all its slots with its own dials, and the last to arrive find
/// every peer full. A torrent dials at most `torrent_outgoing_percent` of
/// its cap (43 of 50) and accepts peers that dial it into the rest.
#[test]
fn a_torrent_keeps_part_of_its_slots_for_peers_that_dial_it() {
    let config = EndpointConfig::default();
    let slots = config.torrent_connections_max;
    let mut e = endpoint(config.clone());
    drain(&mut e);
    let many = (0..100u8).map(|i| SocketAddr::from(([127, 2, 0, i], 6881)));
    e.handle_peers(at(0), T1, PeerSource::Tracker, many);
    let mut id = 0;
    for _ in 0..100 {
        let d = dials(&drain(&mut e));
        if d.is_empty() {
            break;
        }
        for (conn, _) in d {
            id += 1;
            e.handle_handshake(at(0), conn, T1, peer_id_wide(id))
                .unwrap();
        }
    }
    let own = (slots * TORRENT_OUTGOING_PERCENT as usize).div_ceil(100);
    assert_eq!(own, 43);
    assert_eq!(e.torrent_connections(&T1).unwrap().connected, own);
    // A second later the candidates left are looked at again: still no dial.
    e.handle_timeout(at(2));
    assert!(dials(&drain(&mut e)).is_empty(), "the dial share is used");
    // The rest of the slots take peers that dial us, then it is full.
    for i in 0..slots - own {
        let from = addr(10 + (i / config.ip_connections_max) as u8, 5000 + i as u16);
        connect_in(&mut e, at(3), from, T1, peer_id_wide(1000 + i as u32))
            .expect("room kept for incoming peers");
    }
    assert_eq!(
        connect_in(&mut e, at(3), addr(99, 7000), T1, peer_id(250)),
        Err(Refusal::TorrentFull)
    );
    assert_eq!(e.torrent_connections(&T1).unwrap().connected, slots);
    drain(&mut e);
}

/// A full torrent's candidates wait for a slot without a timer: none is
/// looked at again until a connection of the torrent closes, and then one
/// is dialled `full_retry_delay` later (every candidate used to be looked
/// at again every `full_retry_delay`, each a queue removal and insertion).
#[test]
fn a_full_torrent_parks_its_candidates_until_a_connection_closes() {
    let config = EndpointConfig {
        torrent_connections_max: 4,
        torrent_outgoing_percent: 100,
        ..EndpointConfig::default()
    };
    let mut e = endpoint(config);
    drain(&mut e);
    e.handle_peers(
        at(0),
        T1,
        PeerSource::Tracker,
        (2..12).map(|i| addr(i, 6881)),
    );
    let first = dials(&drain(&mut e));
    assert_eq!(first.len(), 4);
    for (i, (conn, _)) in first.iter().enumerate() {
        e.handle_handshake(at(0), *conn, T1, peer_id(i as u8 + 1))
            .unwrap();
    }
    drain(&mut e);
    // Full, six candidates left: no timer, nothing dialled later either.
    assert_eq!(e.poll_timeout(), None, "a full torrent sets no timer");
    e.handle_timeout(at(60));
    assert!(dials(&drain(&mut e)).is_empty());
    assert_eq!(e.torrent_connections(&T1).unwrap().candidates, 10);
    // A connection closes: one parked candidate is dialled a second later.
    e.handle_closed(at(61), first[0].0);
    assert!(dials(&drain(&mut e)).is_empty());
    assert_eq!(e.poll_timeout(), Some(at(62)));
    e.handle_timeout(at(62));
    let next = dials(&drain(&mut e));
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(first.iter().all(|(_, a)| *a != next[0].1), "a parked one");
    // Full again: the rest stay parked.
    assert_eq!(
        e.poll_timeout(),
        Some(at(62) + e.config().handshake_timeout)
    );
    // A higher cap brings every parked candidate back.
    e.set_torrent_connections_max(at(63), T1, Some(20));
    assert_eq!(dials(&drain(&mut e)).len(), 5);
}

/// Both sides seeds: the connection is of no use to either. Closed when
/// we become a seed (for peers already known as seeds) or when a peer
/// shows every piece while we seed; an address we dialled that was a seed
/// is not dialled again while we seed, and is once we want pieces again.
#[test]
fn seeds_close_their_connections_to_seeds_and_do_not_redial_them() {
    let config = EndpointConfig::default();
    let mut e = endpoint(config.clone());
    drain(&mut e);
    let (seed, leecher) = (addr(2, 6881), addr(3, 6881));
    e.handle_peers(at(0), T1, PeerSource::Tracker, [seed, leecher]);
    let d = dials(&drain(&mut e));
    assert_eq!(d.len(), 2);
    let key = |a: SocketAddr| d.iter().find(|x| x.1 == a).unwrap().0;
    e.handle_handshake(at(0), key(seed), T1, peer_id(2))
        .unwrap();
    e.handle_handshake(at(0), key(leecher), T1, peer_id(3))
        .unwrap();
    // A seed while we download: kept.
    e.handle_peer_seed(at(1), key(seed));
    assert!(closes(&drain(&mut e)).is_empty(), "we want its pieces");
    // We complete: the seed goes, the leecher stays.
    e.set_seeding(at(10), T1, true);
    assert!(e.is_seeding(&T1));
    assert_eq!(
        closes(&drain(&mut e)),
        vec![(key(seed), Refusal::BothSeeds)]
    );
    e.handle_closed(at(10), key(seed));
    assert_eq!(e.torrent_connections(&T1).unwrap().connected, 1);
    // Long after the reconnect delay: the seed is not dialled again.
    e.handle_timeout(at(10) + config.reconnect_delay + Duration::from_secs(600));
    assert!(dials(&drain(&mut e)).is_empty(), "a seed is not redialled");
    // A peer that dials us and shows every piece while we seed: closed.
    let k = connect_in(&mut e, at(700), addr(4, 5000), T1, peer_id(4)).unwrap();
    e.handle_peer_seed(at(700), k);
    assert_eq!(closes(&drain(&mut e)), vec![(k, Refusal::BothSeeds)]);
    // The leecher finishes too: closed at once.
    e.handle_peer_seed(at(701), key(leecher));
    assert_eq!(
        closes(&drain(&mut e)),
        vec![(key(leecher), Refusal::BothSeeds)]
    );
    assert_eq!(e.torrent_connections(&T1).unwrap().connected, 0);
    // More files wanted: we download again, and seeds are worth dialling.
    e.set_seeding(at(800), T1, false);
    let again: Vec<SocketAddr> = dials(&drain(&mut e)).into_iter().map(|x| x.1).collect();
    assert!(again.contains(&seed), "{again:?}");
}

/// BEP 40: a full torrent whose connections are all busy lets in a
/// newcomer whose canonical priority beats its lowest connection's, by
/// closing that one; a lower newcomer is refused, and so is every newcomer
/// while our own address is unknown (no priorities to compare).
#[test]
fn a_full_torrent_trades_its_lowest_priority_connection_for_a_higher_newcomer() {
    let config = EndpointConfig::default();
    let (slots, per_ip) = (config.torrent_connections_max, config.ip_connections_max);
    let ours = SocketAddr::from(([10, 0, 0, 1], 6881));
    let from = |i: usize| SocketAddr::from(([10, 1, (i / per_ip) as u8, 1], 5000 + i as u16));
    let prio = |a: SocketAddr| priority::priority(ours, a).unwrap();
    let fill = |e: &mut Endpoint| {
        let keys: Vec<PeerKey> = (0..slots)
            .map(|i| connect_in(e, at(0), from(i), T1, peer_id_wide(i as u32)).unwrap())
            .collect();
        for &k in &keys {
            e.handle_progress(at(30), k); // busy: never idle
        }
        drain(e);
        keys
    };
    let lowest = (0..slots).map(|i| prio(from(i))).min().unwrap();
    let newcomers: Vec<SocketAddr> = (0..=255u8)
        .map(|x| SocketAddr::from(([10, 2, x, 1], 7000)))
        .collect();
    let high = *newcomers.iter().find(|a| prio(**a) > lowest).unwrap();
    let low = *newcomers.iter().find(|a| prio(**a) < lowest).unwrap();

    // Our address unknown: refused, as before.
    let mut e = endpoint(config.clone());
    drain(&mut e);
    fill(&mut e);
    assert_eq!(
        connect_in(&mut e, at(31), high, T1, peer_id(250)),
        Err(Refusal::TorrentFull)
    );

    let mut e = endpoint(config);
    e.set_our_addr(ours);
    drain(&mut e);
    let keys = fill(&mut e);
    assert_eq!(
        connect_in(&mut e, at(31), low, T1, peer_id(251)),
        Err(Refusal::TorrentFull),
        "a lower newcomer stays out"
    );
    assert!(closes(&drain(&mut e)).is_empty());
    connect_in(&mut e, at(31), high, T1, peer_id(250)).expect("a higher newcomer gets in");
    let victim = (0..slots).min_by_key(|&i| prio(from(i))).unwrap();
    assert_eq!(
        closes(&drain(&mut e)),
        vec![(keys[victim], Refusal::LowerPriority)]
    );
    assert_eq!(e.torrent_connections(&T1).unwrap().connected, slots);
}
