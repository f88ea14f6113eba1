//! The DHT engine in virtual time: many nodes on a modelled network, run
//! deterministically from a seed.

mod net;

use ed25519_dalek::SigningKey;
use net::Net;
use swarm_dht::item::Item;
use swarm_dht::{DhtConfig, Duration, LookupOutcome, NodeId, Rng};
use swarm_wire::InfoHash;
use swarm_wire::krpc::{Message, NodeInfo, QueryKind, ShortBytes};

fn config() -> DhtConfig {
    DhtConfig::default()
}

/// The `k` ids of the network closest to `target`, by brute force.
fn truth(net: &Net, target: &NodeId, k: usize) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = net.nodes.iter().map(|n| n.id()).collect();
    ids.sort_by_key(|id| id.distance(target));
    ids.truncate(k);
    ids
}

#[test]
fn lookups_converge_on_the_k_closest() {
    let seed = 7;
    println!("seed {seed}");
    let mut net = Net::new(200, seed, config());
    net.bootstrap_all();
    net.check_invariants();
    let mut rng = Rng::new(seed);
    for _ in 0..30 {
        let target = NodeId(rng.bytes());
        let from = rng.below(200) as usize;
        let now = net.now;
        let id = net.nodes[from].find_node(now, target);
        let LookupOutcome::Nodes(found) = net.wait(from, id, Duration::from_secs(60)) else {
            panic!()
        };
        let got: Vec<NodeId> = found.iter().map(|n| n.id).collect();
        let mut want = truth(&net, &target, 9);
        // The asker does not find itself.
        want.retain(|id| *id != net.nodes[from].id());
        want.truncate(8);
        assert_eq!(got, want, "lookup from node {from} for {target}");
    }
    net.check_invariants();
    // Tables are populated and split.
    for n in &net.nodes {
        assert!(n.table(false).len() >= 8, "{}", n.table(false).len());
        assert!(n.table(false).buckets().len() >= 3);
    }
}

#[test]
fn immutable_and_mutable_items_and_peers_across_nodes() {
    let mut net = Net::new(60, 11, config());
    net.bootstrap_all();
    // Immutable: put by node 3, got by node 40.
    let now = net.now;
    let (id, key) = net.nodes[3]
        .put_immutable(now, b"12:Hello World!".to_vec())
        .unwrap();
    let LookupOutcome::Put { stored, .. } = net.wait(3, id, Duration::from_secs(60)) else {
        panic!()
    };
    assert!(stored >= 6, "stored at {stored} nodes");
    let now = net.now;
    let id = net.nodes[40].get_immutable(now, key);
    let LookupOutcome::Item(Some(item)) = net.wait(40, id, Duration::from_secs(60)) else {
        panic!("immutable item not found")
    };
    assert_eq!(item.value, b"12:Hello World!");

    // Mutable: two puts with the derived sequence number; the second wins.
    let sk = SigningKey::from_bytes(&[5; 32]);
    for (v, want_seq) in [(&b"3:one"[..], 1), (&b"3:two"[..], 2)] {
        let now = net.now;
        let (id, _) = net.nodes[7]
            .put_mutable(now, &sk, b"salt", v.to_vec(), None, None)
            .unwrap();
        let LookupOutcome::Put { seq, stored, .. } = net.wait(7, id, Duration::from_secs(60))
        else {
            panic!()
        };
        assert_eq!(seq, Some(want_seq));
        assert!(stored >= 6);
    }
    let now = net.now;
    let id = net.nodes[50].get_mutable(now, sk.verifying_key().to_bytes(), b"salt");
    let LookupOutcome::Item(Some(item)) = net.wait(50, id, Duration::from_secs(60)) else {
        panic!("mutable item not found")
    };
    assert_eq!(item.value, b"3:two");
    assert_eq!(item.signed.as_ref().unwrap().seq, 2);
    // A stale sequence number is refused by every node that has seq 2.
    let now = net.now;
    let (id, _) = net.nodes[9]
        .put_mutable(now, &sk, b"salt", b"3:old".to_vec(), Some(1), None)
        .unwrap();
    let LookupOutcome::Put {
        stored, refused, ..
    } = net.wait(9, id, Duration::from_secs(60))
    else {
        panic!()
    };
    assert!(
        refused >= 6 && stored <= 2,
        "stored {stored} refused {refused}"
    );

    // Peers: node 20 announces, node 30 finds it.
    let ih = InfoHash([0xab; 20]);
    let now = net.now;
    let id = net.nodes[20].get_peers(now, ih, Some(Some(51413)));
    let LookupOutcome::Peers { announced, .. } = net.wait(20, id, Duration::from_secs(60)) else {
        panic!()
    };
    assert!(announced >= 6);
    let now = net.now;
    let id = net.nodes[30].get_peers(now, ih, None);
    let LookupOutcome::Peers { peers, .. } = net.wait(30, id, Duration::from_secs(60)) else {
        panic!()
    };
    let want = std::net::SocketAddr::new(net.addrs[20].ip(), 51413);
    assert_eq!(peers, vec![want]);
    net.check_invariants();
}

#[test]
fn items_expire_after_two_hours_unless_re_put() {
    let mut net = Net::new(30, 3, config());
    net.bootstrap_all();
    let now = net.now;
    let (id, key) = net.nodes[1].put_immutable(now, b"4:gone".to_vec()).unwrap();
    net.wait(1, id, Duration::from_secs(60));
    let (id, kept) = net.nodes[1].put_immutable(now, b"4:kept".to_vec()).unwrap();
    net.wait(1, id, Duration::from_secs(60));
    // An hour later the second is put again.
    net.run_until(net.now + Duration::from_secs(3600));
    let now = net.now;
    let (id, _) = net.nodes[2].put_immutable(now, b"4:kept".to_vec()).unwrap();
    net.wait(2, id, Duration::from_secs(60));
    net.run_until(net.now + Duration::from_secs(3600 + 60));
    let now = net.now;
    let id = net.nodes[20].get_immutable(now, key);
    assert_eq!(
        net.wait(20, id, Duration::from_secs(60)),
        LookupOutcome::Item(None)
    );
    let id = net.nodes[20].get_immutable(net.now, kept);
    assert!(matches!(
        net.wait(20, id, Duration::from_secs(60)),
        LookupOutcome::Item(Some(_))
    ));
    // Two hours of silence kept the tables alive by refreshes.
    assert!(net.nodes.iter().all(|n| n.table(false).len() >= 8));
    net.check_invariants();
}

#[test]
fn dead_nodes_are_replaced_and_lookups_route_around_them() {
    let mut net = Net::new(120, 5, config());
    net.bootstrap_all();
    // A third of the network dies.
    for i in (1..120).step_by(3) {
        net.dead.insert(i);
    }
    // Within 40 minutes the stale nodes are pinged, fail twice, turn bad
    // and leave the tables (replaced where a live node waited).
    net.run_until(net.now + Duration::from_secs(40 * 60));
    let dead_ids: Vec<NodeId> = net.dead.iter().map(|&i| net.nodes[i].id()).collect();
    for (i, n) in net.nodes.iter().enumerate() {
        if net.dead.contains(&i) {
            continue;
        }
        let alive_looking = n
            .table(false)
            .nodes()
            .filter(|x| {
                dead_ids.contains(&x.info.id) && x.failures < swarm_dht::table::FAILURES_BAD
            })
            .count();
        assert_eq!(alive_looking, 0, "node {i}: a dead node still looks alive");
        assert!(n.table(false).len() >= 8);
    }
    // Lookups now find the k closest live nodes exactly.
    let mut rng = Rng::new(9);
    for _ in 0..10 {
        let target = NodeId(rng.bytes());
        let from = 2;
        let id = net.nodes[from].find_node(net.now, target);
        let LookupOutcome::Nodes(found) = net.wait(from, id, Duration::from_secs(120)) else {
            panic!()
        };
        let mut alive: Vec<NodeId> = (0..120)
            .filter(|i| !net.dead.contains(i) && *i != from)
            .map(|i| net.nodes[i].id())
            .collect();
        alive.sort_by_key(|id| id.distance(&target));
        alive.truncate(8);
        let got: Vec<NodeId> = found.iter().map(|n| n.id).collect();
        assert_eq!(got, alive);
    }
    net.check_invariants();
}

/// The next answer the node sends (skipping its own queries, such as
/// housekeeping pings).
fn reply(n: &mut swarm_dht::Dht) -> Vec<u8> {
    while let Some((_, b)) = n.poll_transmit() {
        if !matches!(
            Message::decode(&b).unwrap().body,
            swarm_wire::krpc::Body::Query(_)
        ) {
            return b;
        }
    }
    panic!("no answer")
}

fn query(tid: u8, id: NodeId, kind: QueryKind) -> Vec<u8> {
    Message::query(ShortBytes::new(&[tid]).unwrap(), id, kind).encode()
}

#[test]
fn tokens_rotate_and_bind_to_the_ip() {
    let mut net = Net::new(2, 1, config());
    let asker: std::net::SocketAddr = "10.9.9.9:1000".parse().unwrap();
    let other: std::net::SocketAddr = "10.9.9.8:1000".parse().unwrap();
    let ih = InfoHash([1; 20]);
    let now = net.now;
    net.nodes[0].handle_datagram(
        now,
        asker,
        &query(1, NodeId([9; 20]), QueryKind::GetPeers { info_hash: ih }),
    );
    let (_, first) = net.nodes[0].poll_transmit().unwrap();
    let Message {
        body: swarm_wire::krpc::Body::Response(r),
        ..
    } = Message::decode(&first).unwrap()
    else {
        panic!()
    };
    let token = r.token.unwrap();
    let announce = |t: &[u8]| {
        query(
            2,
            NodeId([9; 20]),
            QueryKind::AnnouncePeer {
                info_hash: ih,
                port: 7000,
                implied_port: false,
                token: t.to_vec(),
            },
        )
    };
    let is_error = |b: &[u8]| {
        matches!(
            Message::decode(b).unwrap().body,
            swarm_wire::krpc::Body::Error(_)
        )
    };
    // From another IP: refused.
    net.nodes[0].handle_datagram(now, other, &announce(&token));
    assert!(is_error(&reply(&mut net.nodes[0])));
    // Six minutes later (one rotation): still good.
    let t1 = now + Duration::from_secs(6 * 60);
    net.nodes[0].handle_timeout(t1);
    net.nodes[0].handle_datagram(t1, asker, &announce(&token));
    assert!(!is_error(&reply(&mut net.nodes[0])));
    assert_eq!(net.nodes[0].store().peer_count(), 1);
    // Twelve minutes (two rotations): refused.
    let t2 = now + Duration::from_secs(12 * 60);
    net.nodes[0].handle_timeout(t2);
    net.nodes[0].handle_datagram(t2, asker, &announce(&token));
    assert!(is_error(&reply(&mut net.nodes[0])));
}

#[test]
fn hostile_input_is_answered_or_dropped_and_floods_are_limited() {
    let mut net = Net::new(1, 1, config());
    let now = net.now;
    let n = &mut net.nodes[0];
    let flooder: std::net::SocketAddr = "10.1.1.1:1".parse().unwrap();
    let polite: std::net::SocketAddr = "10.2.2.2:1".parse().unwrap();
    // Garbage: dropped; a malformed query: error 203; unknown method: 204.
    n.handle_datagram(now, flooder, b"garbage");
    assert!(n.poll_transmit().is_none());
    n.handle_datagram(now, flooder, b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe");
    let (_, b) = n.poll_transmit().unwrap();
    assert!(
        matches!(Message::decode(&b).unwrap().body, swarm_wire::krpc::Body::Error(e) if e.code == 203)
    );
    n.handle_datagram(
        now,
        flooder,
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:aa1:y1:qe",
    );
    let (_, b) = n.poll_transmit().unwrap();
    assert!(
        matches!(Message::decode(&b).unwrap().body, swarm_wire::krpc::Body::Error(e) if e.code == 204)
    );
    // A bad signature and an oversized value are refused, nothing stored.
    let sk = SigningKey::from_bytes(&[3; 32]);
    let mut item = Item::sign(&sk, b"", 1, b"1:a".to_vec()).unwrap();
    item.value = b"1:b".to_vec();
    let s = item.signed.unwrap();
    let put = |value: Vec<u8>| {
        query(
            3,
            NodeId([4; 20]),
            QueryKind::Put(swarm_wire::krpc::Put {
                token: vec![0; 8],
                value,
                mutable: Some(swarm_wire::krpc::MutablePut {
                    key: s.key,
                    sig: s.sig,
                    salt: vec![],
                    seq: 1,
                    cas: None,
                }),
            }),
        )
    };
    n.handle_datagram(now, polite, &put(b"1:b".to_vec()));
    let (_, b) = n.poll_transmit().unwrap();
    assert!(
        matches!(Message::decode(&b).unwrap().body, swarm_wire::krpc::Body::Error(e) if e.code == 203),
        "bad token first"
    );
    assert_eq!(n.store().items(), 0);
    // A flood of 1000 pings at one instant: only the burst is answered,
    // and another address is still served.
    let ping = query(5, NodeId([6; 20]), QueryKind::Ping);
    for _ in 0..1000 {
        n.handle_datagram(now, flooder, &ping);
    }
    let mut answered = 0;
    while n.poll_transmit().is_some() {
        answered += 1;
    }
    assert!(answered <= 100, "{answered} answered");
    n.handle_datagram(now, polite, &ping);
    assert!(n.poll_transmit().is_some(), "another IP starved");
    assert!(n.stats(now).rate_limited >= 900);
    n.check_invariants();
    let _ = NodeInfo {
        id: NodeId([0; 20]),
        addr: polite,
    };
}

#[test]
fn a_pinged_address_that_answers_joins_the_table() {
    use swarm_dht::{Dht, Instant};
    let (a_addr, b_addr): (std::net::SocketAddr, std::net::SocketAddr) = (
        "10.0.0.1:6881".parse().unwrap(),
        "10.0.0.2:6881".parse().unwrap(),
    );
    let mut a = Dht::new(config(), None, 1, Instant(0));
    let mut b = Dht::new(config(), None, 2, Instant(0));
    let now = Instant(1_000);
    a.ping(now, b_addr);
    let (to, q) = a.poll_transmit().expect("a ping");
    assert_eq!(to, b_addr);
    b.handle_datagram(now, a_addr, &q);
    let answer = reply(&mut b);
    assert!(a.nodes().is_empty());
    a.handle_datagram(now, b_addr, &answer);
    let nodes = a.nodes();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!((nodes[0].id, nodes[0].addr), (b.id(), b_addr));
    a.check_invariants();
    // No answer: nothing joins.
    a.ping(now, "10.0.0.3:6881".parse().unwrap());
    a.handle_timeout(now + Duration::from_secs(60));
    assert_eq!(a.nodes().len(), 1);
}

#[test]
fn ids_that_fail_bep_42_stay_out_of_the_table_and_are_still_answered() {
    use swarm_dht::{Dht, Instant, bep42};
    let mut n = Dht::new(config(), None, 7, Instant(0));
    let now = Instant(1_000);
    let public: std::net::SocketAddr = "93.184.216.34:6881".parse().unwrap();
    let other: std::net::SocketAddr = "93.184.216.35:6881".parse().unwrap();
    // An id unrelated to its IP: answered (queries are served), not admitted.
    n.handle_datagram(now, public, &query(1, NodeId([0x42; 20]), QueryKind::Ping));
    assert!(!matches!(
        Message::decode(&reply(&mut n)).unwrap().body,
        swarm_wire::krpc::Body::Error(_)
    ));
    assert!(n.nodes().is_empty(), "a BEP 42 failure joined the table");
    // An id derived from its IP (BEP 42) is admitted.
    let good = bep42::id_for_ip(other.ip(), [0x17; 20]);
    n.handle_datagram(now, other, &query(2, good, QueryKind::Ping));
    reply(&mut n);
    let nodes = n.nodes();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!((nodes[0].id, nodes[0].addr), (good, other));
    // With enforcement off (loopback tests), the unrelated id joins too.
    let mut lax = Dht::new(
        DhtConfig {
            enforce_node_id: false,
            ..config()
        },
        None,
        8,
        Instant(0),
    );
    lax.handle_datagram(now, public, &query(3, NodeId([0x42; 20]), QueryKind::Ping));
    reply(&mut lax);
    assert_eq!(lax.nodes().len(), 1);
    n.check_invariants();
    lax.check_invariants();
}

#[test]
fn kept_items_are_put_again_before_they_expire() {
    let mut net = Net::new(30, 4, config());
    net.bootstrap_all();
    let limit = Duration::from_secs(60);
    // An immutable and a mutable item kept by their writer; one not kept.
    let imm = Item::immutable(b"4:kept".to_vec()).unwrap();
    let (id, _) = net.nodes[1]
        .put_immutable(net.now, b"4:kept".to_vec())
        .unwrap();
    net.wait(1, id, limit);
    assert!(net.nodes[1].keep(net.now, imm.clone()));
    let sk = SigningKey::from_bytes(&[7; 32]);
    let (id, _) = net.nodes[1]
        .put_mutable(net.now, &sk, b"s", b"3:mut".to_vec(), None, None)
        .unwrap();
    let LookupOutcome::Put { seq: Some(seq), .. } = net.wait(1, id, limit) else {
        panic!("mutable put")
    };
    let signed = Item::sign(&sk, b"s", seq, b"3:mut".to_vec()).unwrap();
    assert!(net.nodes[1].keep(net.now, signed));
    let (id, gone) = net.nodes[1]
        .put_immutable(net.now, b"4:gone".to_vec())
        .unwrap();
    net.wait(1, id, limit);
    assert_eq!(net.nodes[1].kept().count(), 2);

    // Five hours: more than twice an item's two-hour life.
    net.run_until(net.now + Duration::from_secs(5 * 3600));
    let id = net.nodes[20].get_immutable(net.now, imm.target());
    assert_eq!(
        net.wait(20, id, limit),
        LookupOutcome::Item(Some(imm.clone()))
    );
    let id = net.nodes[20].get_mutable(net.now, sk.verifying_key().to_bytes(), b"s");
    let LookupOutcome::Item(Some(m)) = net.wait(20, id, limit) else {
        panic!("the kept mutable item expired")
    };
    assert_eq!(
        (m.value.as_slice(), m.signed.unwrap().seq),
        (&b"3:mut"[..], seq)
    );
    let id = net.nodes[20].get_immutable(net.now, gone);
    assert_eq!(net.wait(20, id, limit), LookupOutcome::Item(None));

    // Forgotten, it expires like any other.
    net.nodes[1].forget(&imm.target());
    net.run_until(net.now + Duration::from_secs(3 * 3600));
    let id = net.nodes[20].get_immutable(net.now, imm.target());
    assert_eq!(net.wait(20, id, limit), LookupOutcome::Item(None));
    net.check_invariants();
}
