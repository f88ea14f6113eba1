//! Tracker messages, server direction: requests decoded, responses encoded.
//!
//! - [`http`]: announce and scrape query strings (BEP 3, 23, 7, 48), bencoded responses.
//! - [`udp`]: BEP 15 request datagrams and response datagrams.
//!
//! The client direction lives beside it ([`super::http`], [`super::udp`]);
//! tests round-trip each direction through the other.

pub mod http;
pub mod udp;
