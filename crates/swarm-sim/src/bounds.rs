//! The fluid bounds on the time to distribute a file of F bytes to N
//! peers (Kumar and Ross, "Peer-assisted file distribution: the minimum
//! distribution time", 2006): no schedule, however clever, beats them.

use crate::scenario::Scenario;

/// Client-server: the server sends N copies, and the slowest peer receives
/// one: `max(N·F/u_s, F/d_min)` seconds.
pub fn client_server(n: usize, file: f64, u_s: f64, d_min: f64) -> f64 {
    (n as f64 * file / u_s).max(file / d_min)
}

/// Peer-to-peer: the server sends at least one copy, the slowest peer
/// receives one, and all N copies cross someone's uplink:
/// `max(F/u_s, F/d_min, N·F/(u_s + Σu_i))` seconds.
pub fn p2p(n: usize, file: f64, u_s: f64, d_min: f64, sum_u: f64) -> f64 {
    (file / u_s)
        .max(file / d_min)
        .max(n as f64 * file / (u_s + sum_u))
}

/// Both bounds for a scenario (free riders upload nothing; several initial
/// seeds count as one server of their summed rate).
pub fn of(sc: &Scenario) -> (f64, f64) {
    let f = sc.file_bytes() as f64;
    let u_s = sc.seed_up * sc.seeds as f64;
    let sum_u = sc.peer_up * sc.leechers.saturating_sub(sc.free_rider_count()) as f64;
    (
        client_server(sc.leechers, f, u_s, sc.peer_down),
        p2p(sc.leechers, f, u_s, sc.peer_down, sum_u),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_textbook_numbers() {
        // F = 1 GB, u_s = 30 MB/s, d = 2 MB/s, u = 1 MB/s (Kurose & Ross's example shape).
        let f = 1e9;
        assert_eq!(client_server(10, f, 30e6, 2e6), f / 2e6);
        assert!((client_server(1000, f, 30e6, 2e6) - 1000.0 * f / 30e6).abs() < 1e-6);
        let p = p2p(1000, f, 30e6, 2e6, 1000.0 * 1e6);
        assert!((p - 1000.0 * f / 1030e6).abs() < 1e-6);
        // One peer: the P2P bound is the client-server one.
        assert_eq!(p2p(1, f, 30e6, 2e6, 1e6), client_server(1, f, 30e6, 2e6));
    }
}
