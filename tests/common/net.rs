//! Ports on 127.0.0.1, the only address the tests use.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Ports that were free a moment ago (all held at once while they are
/// picked, so they differ).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    let mut ports = [0u16; N];
    for (slot, l) in ports.iter_mut().zip(&held) {
        *slot = l.local_addr().expect("local addr").port();
    }
    ports
}

pub fn port_answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}
