//! What a run measured: per peer times and bytes, samples over time, the
//! run's own cost; and the CSV forms the experiments write.

use std::fmt::Write as _;

use swarm_engine::Instant;

/// One peer's run.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerOutcome {
    pub index: usize,
    pub initial_seed: bool,
    pub free_rider: bool,
    pub upload_rate: f64,
    pub joined: Option<Instant>,
    pub completed: Option<Instant>,
    pub left: Option<Instant>,
    /// Payload bytes that crossed its uplink.
    pub uploaded: u64,
    /// Payload bytes it received and used, and received and threw away
    /// (duplicates), by its core's count (when it left, or at the end).
    pub downloaded: u64,
    pub wasted: u64,
}

impl PeerOutcome {
    /// Seconds from arrival to completion (leechers that completed).
    pub fn download_secs(&self) -> Option<f64> {
        Some(self.completed?.saturating_since(self.joined?).as_secs_f64())
    }
}

/// The swarm at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub at: Instant,
    /// Peers in the swarm (seeds included).
    pub present: usize,
    /// Leechers that completed so far (whether still present or not).
    pub completed: usize,
    /// Copies of the rarest piece among present peers.
    pub rarest_copies: u32,
    /// Mean copies per piece among present peers.
    pub mean_copies: f64,
    /// Payload bytes uploaded so far, all peers.
    pub uploaded: u64,
}

/// Everything a run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub peers: Vec<PeerOutcome>,
    pub samples: Vec<Sample>,
    /// When the last leecher completed (`None` if some never did).
    pub last_completion: Option<Instant>,
    /// When the run stopped.
    pub end: Instant,
    /// Payload bytes uploaded, all peers.
    pub uploaded: u64,
    /// Upload capacity of the present peers, integrated over the time up
    /// to the last completion (or the end): bytes that *could* have been sent.
    pub upload_capacity: f64,
    /// Events handled.
    pub events: u64,
    /// The most events waiting at once.
    pub events_peak: usize,
    /// Pieces that no present peer had at some sample (lost).
    pub pieces_lost_at_end: u32,
    /// When the leechers first held every piece between them: the end of
    /// the seeds' first copy (`F/u_s` at best).
    pub first_copy_at: Option<Instant>,
    /// Blocks of each piece the initial seeds uploaded (duplicates show).
    pub seed_blocks: Vec<u32>,
}

impl Outcome {
    /// Fraction of the upload capacity used up to the last completion.
    pub fn upload_utilisation(&self) -> f64 {
        if self.upload_capacity > 0.0 {
            self.uploaded as f64 / self.upload_capacity
        } else {
            0.0
        }
    }

    /// Leechers' download times in seconds, sorted.
    pub fn download_secs(&self, pick: impl Fn(&PeerOutcome) -> bool) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .peers
            .iter()
            .filter(|p| !p.initial_seed && pick(p))
            .filter_map(PeerOutcome::download_secs)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Leechers that completed.
    pub fn completed(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| !p.initial_seed && p.completed.is_some())
            .count()
    }

    /// One line per peer: `peer,seed,free_rider,upload_Bps,joined_s,completed_s,left_s,uploaded_bytes`.
    pub fn peers_csv(&self) -> String {
        let mut s = String::from(
            "peer,seed,free_rider,upload_Bps,joined_s,completed_s,left_s,uploaded_bytes\n",
        );
        let t = |i: Option<Instant>| i.map_or(String::new(), |i| format!("{:.6}", secs(i)));
        for p in &self.peers {
            let _ = writeln!(
                s,
                "{},{},{},{:.0},{},{},{},{}",
                p.index,
                u8::from(p.initial_seed),
                u8::from(p.free_rider),
                p.upload_rate,
                t(p.joined),
                t(p.completed),
                t(p.left),
                p.uploaded
            );
        }
        s
    }

    /// One line per sample: `t_s,present,completed,rarest_copies,mean_copies,uploaded_bytes`.
    pub fn samples_csv(&self) -> String {
        let mut s =
            String::from("t_s,present,completed,rarest_copies,mean_copies,uploaded_bytes\n");
        for x in &self.samples {
            let _ = writeln!(
                s,
                "{:.3},{},{},{},{:.3},{}",
                secs(x.at),
                x.present,
                x.completed,
                x.rarest_copies,
                x.mean_copies,
                x.uploaded
            );
        }
        s
    }
}

/// Seconds since the start of the run.
pub fn secs(t: Instant) -> f64 {
    t.0 as f64 / 1e6
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied()
}
