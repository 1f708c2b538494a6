//! Where each simulated node lives on the network. The store and cluster
//! nodes have fixed addresses; replicas, clients and the admin each have a
//! block, numbered from 1 within it, so a fleet of thousands still gets
//! one address per node (`10.H.block.L`, with `H.L` the node's number
//! written in base 256; below 256 that is the `10.0.block.n` the traces of
//! small worlds have always used).

use crate::options::{MAX_CLIENTS, MAX_REPLICAS};
use crate::rpc::SESSION_PORT;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The replicas' block.
const REPLICAS: u8 = 1;
/// The clients' block.
const CLIENTS: u8 = 2;
/// The cron admin and settings readers' block.
const ADMIN: u8 = 3;

// The numbering must fit two octets.
const _: () = assert!(MAX_REPLICAS < 65_536 && MAX_CLIENTS < 65_536);

fn in_block(block: u8, i: usize) -> IpAddr {
    let n = u16::try_from(i + 1).expect("node numbers fit two octets (options limit the fleet)");
    let [hi, lo] = n.to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(10, hi, block, lo))
}

/// Replica `i`'s (0-based) address.
pub fn replica_ip(i: usize) -> IpAddr {
    in_block(REPLICAS, i)
}

/// Replica `i`'s session endpoint.
pub fn replica_addr(i: usize) -> SocketAddr {
    SocketAddr::new(replica_ip(i), SESSION_PORT)
}

/// Client `c`'s (0-based) address.
pub fn client_ip(c: usize) -> IpAddr {
    in_block(CLIENTS, c)
}

/// The cron admin's address.
pub fn admin_ip() -> IpAddr {
    in_block(ADMIN, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_fleets_keep_their_addresses() {
        assert_eq!(replica_ip(0).to_string(), "10.0.1.1");
        assert_eq!(replica_ip(253).to_string(), "10.0.1.254");
        assert_eq!(client_ip(63).to_string(), "10.0.2.64");
        assert_eq!(admin_ip().to_string(), "10.0.3.1");
    }

    #[test]
    fn every_node_of_the_largest_fleet_has_its_own_address() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..MAX_REPLICAS {
            assert!(seen.insert(replica_ip(i)), "replica {i}");
        }
        for c in 0..MAX_CLIENTS {
            assert!(seen.insert(client_ip(c)), "client {c}");
        }
        assert!(seen.insert(admin_ip()));
        // Nor do they clash with the store's and the cluster's.
        assert!(!seen.contains(&crate::store_node::STORE_ADDR.ip()));
        assert!(!seen.contains(&crate::cluster_node::CLUSTER_ADDR.ip()));
    }
}
