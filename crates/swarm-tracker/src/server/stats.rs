//! The tracker's numbers: each worker counts in plain integers and
//! publishes them once a second into its own atomics; `/stats`, `/metrics`
//! and the minute log line sum the workers. Published numbers, not a lock
//! around the registry.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one worker counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub udp_announces: u64,
    pub udp_scrapes: u64,
    pub udp_connects: u64,
    pub udp_errors: u64,
    pub udp_dropped: u64,
    pub http_announces: u64,
    pub http_scrapes: u64,
    pub http_errors: u64,
    pub refused: u64,
    pub expired: u64,
    pub swarms: u64,
    pub seeders: u64,
    pub leechers: u64,
    pub peers_v6: u64,
    pub memory_bytes: u64,
}

macro_rules! fields {
    ($m:ident) => {
        $m!(
            udp_announces,
            udp_scrapes,
            udp_connects,
            udp_errors,
            udp_dropped,
            http_announces,
            http_scrapes,
            http_errors,
            refused,
            expired,
            swarms,
            seeders,
            leechers,
            peers_v6,
            memory_bytes
        )
    };
}

/// One worker's published counters.
#[derive(Debug, Default)]
pub struct Published {
    udp_announces: AtomicU64,
    udp_scrapes: AtomicU64,
    udp_connects: AtomicU64,
    udp_errors: AtomicU64,
    udp_dropped: AtomicU64,
    http_announces: AtomicU64,
    http_scrapes: AtomicU64,
    http_errors: AtomicU64,
    refused: AtomicU64,
    expired: AtomicU64,
    swarms: AtomicU64,
    seeders: AtomicU64,
    leechers: AtomicU64,
    peers_v6: AtomicU64,
    memory_bytes: AtomicU64,
}

impl Published {
    pub fn publish(&self, c: &Counters) {
        macro_rules! store {
            ($($f:ident),*) => { $(self.$f.store(c.$f, Ordering::Relaxed);)* };
        }
        fields!(store);
    }

    pub fn read(&self) -> Counters {
        let mut c = Counters::default();
        macro_rules! load {
            ($($f:ident),*) => { $(c.$f = self.$f.load(Ordering::Relaxed);)* };
        }
        fields!(load);
        c
    }
}

impl Counters {
    /// The sum over workers.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Published>) -> Counters {
        let mut total = Counters::default();
        for p in all {
            let c = p.read();
            macro_rules! add {
                ($($f:ident),*) => { $(total.$f += c.$f;)* };
            }
            fields!(add);
        }
        total
    }

    pub fn peers(&self) -> u64 {
        self.seeders + self.leechers
    }

    pub fn announces(&self) -> u64 {
        self.udp_announces + self.http_announces
    }

    /// `/stats`: one JSON object.
    pub fn to_json(&self, uptime_s: u64, workers: usize, memory_bound_bytes: u64) -> String {
        let mut s = String::from("{");
        macro_rules! put {
            ($($f:ident),*) => { $(let _ = write!(s, "\"{}\":{},", stringify!($f), self.$f);)* };
        }
        fields!(put);
        let _ = write!(
            s,
            "\"peers\":{},\"announces\":{},\"uptime_s\":{uptime_s},\"workers\":{workers},\"memory_bound_bytes\":{memory_bound_bytes}}}",
            self.peers(),
            self.announces()
        );
        s
    }

    /// `/metrics`: the Prometheus text format (version 0.0.4).
    pub fn to_prometheus(&self, uptime_s: u64) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(s, "# HELP swarm_tracker_{name} {help}");
            let _ = writeln!(s, "# TYPE swarm_tracker_{name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(s, "swarm_tracker_{name}{labels} {v}");
            }
        };
        metric(
            "swarms",
            "gauge",
            "Torrents with at least one peer.",
            &[("", self.swarms)],
        );
        metric(
            "peers",
            "gauge",
            "Peers registered.",
            &[
                ("{kind=\"seeder\"}", self.seeders),
                ("{kind=\"leecher\"}", self.leechers),
            ],
        );
        metric(
            "peers_ipv6",
            "gauge",
            "Peers with an IPv6 address.",
            &[("", self.peers_v6)],
        );
        metric(
            "announces_total",
            "counter",
            "Announces answered.",
            &[
                ("{proto=\"udp\"}", self.udp_announces),
                ("{proto=\"http\"}", self.http_announces),
            ],
        );
        metric(
            "scrapes_total",
            "counter",
            "Scrapes answered.",
            &[
                ("{proto=\"udp\"}", self.udp_scrapes),
                ("{proto=\"http\"}", self.http_scrapes),
            ],
        );
        metric(
            "connects_total",
            "counter",
            "UDP connects answered.",
            &[("", self.udp_connects)],
        );
        metric(
            "bad_requests_total",
            "counter",
            "Malformed requests or invalid connection ids.",
            &[
                ("{proto=\"udp\"}", self.udp_errors),
                ("{proto=\"http\"}", self.http_errors),
            ],
        );
        metric(
            "udp_dropped_total",
            "counter",
            "UDP responses or forwards dropped (buffers full).",
            &[("", self.udp_dropped)],
        );
        metric(
            "refused_total",
            "counter",
            "Announces refused by a limit or an access list.",
            &[("", self.refused)],
        );
        metric(
            "expired_total",
            "counter",
            "Peers expired after 2 intervals of silence.",
            &[("", self.expired)],
        );
        metric(
            "registry_bytes",
            "gauge",
            "Estimated bytes held by the registry.",
            &[("", self.memory_bytes)],
        );
        metric(
            "uptime_seconds",
            "counter",
            "Seconds since start.",
            &[("", uptime_s)],
        );
        s
    }
}
