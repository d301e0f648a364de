//! LAN discovery with mDNS/DNS-SD (`mdns-sd`): each daemon advertises `_ferry._tcp` with its
//! device id in the TXT record and browses for the others; an advertised device that is a
//! member of the vault goes into the peer table with the address it was found at, which its
//! link dials first. Nothing found this way is trusted: the TLS handshake still checks the key.

use crate::peers::PeerTable;
use ferry_format::DeviceId;
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use std::net::{IpAddr, SocketAddr};

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_ferry._tcp.local.";

/// What can stop discovery from starting (the daemon goes on without it).
#[derive(Debug, thiserror::Error)]
#[error("mDNS discovery is off: {0}")]
pub struct DiscoveryError(String);

/// Advertising and browsing; dropping it stops both and withdraws the advertisement.
pub(crate) struct Discovery {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}

/// Advertises `device` serving on `port`, and feeds devices found into `peers`.
pub(crate) fn start(device: DeviceId, port: u16, peers: PeerTable) -> Result<Discovery, DiscoveryError> {
    let err = |e: mdns_sd::Error| DiscoveryError(e.to_string());
    let daemon = ServiceDaemon::new().map_err(err)?;
    let id = device.to_string();
    let host = format!("ferry-{}.local.", &id[..12]);
    let info = ServiceInfo::new(SERVICE_TYPE, &id, &host, "", port, [("id", id.as_str()), ("v", "1")].as_slice())
        .map_err(err)?
        .enable_addr_auto();
    let fullname = info.get_fullname().to_owned();
    daemon.register(info).map_err(err)?;
    let events = daemon.browse(SERVICE_TYPE).map_err(err)?;
    std::thread::Builder::new()
        .name("ferry-mdns".into())
        .spawn(move || {
            // Ends when the daemon shuts down and the channel closes.
            while let Ok(event) = events.recv() {
                let ServiceEvent::ServiceResolved(service) = event else { continue };
                let Some(found) = service.get_property_val_str("id").and_then(|id| id.parse::<DeviceId>().ok()) else {
                    continue;
                };
                let ips: Vec<IpAddr> = service.get_addresses().iter().map(mdns_sd::ScopedIp::to_ip_addr).collect();
                if found != device
                    && let Some(ip) = best_address(&ips)
                {
                    peers.discovered(found, SocketAddr::new(ip, service.get_port()));
                }
            }
        })
        .map_err(|e| DiscoveryError(e.to_string()))?;
    Ok(Discovery { daemon, fullname })
}

/// The address to dial among those advertised: IPv4 first (IPv6 link-local needs a scope the
/// address alone does not carry), loopback last.
fn best_address(ips: &[IpAddr]) -> Option<IpAddr> {
    let rank = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) if !v4.is_loopback() => 0,
        IpAddr::V6(v6) if !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80 => 1,
        IpAddr::V4(_) => 2,
        IpAddr::V6(_) => 3,
    };
    ips.iter().filter(|ip| rank(ip) < 3 || ips.len() == 1).min_by_key(|ip| rank(ip)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routable_ipv4_is_dialled_first() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(best_address(&[ip("fe80::1"), ip("127.0.0.1"), ip("10.1.2.3")]), Some(ip("10.1.2.3")));
        assert_eq!(best_address(&[ip("fe80::1"), ip("fd00::5")]), Some(ip("fd00::5")));
        assert_eq!(best_address(&[ip("fe80::1"), ip("127.0.0.1")]), Some(ip("127.0.0.1")));
        assert_eq!(best_address(&[]), None);
    }
}
