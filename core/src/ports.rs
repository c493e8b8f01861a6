//! Host ports of sandboxes. Until the nftables backend lands, mapping ports is refused with a
//! clear error rather than silently ignored.

use crate::state::Sandbox;
use crate::{Error, ErrorKind, Node, Result};

impl Node {
    pub(crate) async fn map_ports(&self, sb: &Sandbox) -> Result<()> {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("map host ports of {}", sb.id),
            "host ports are not supported yet",
        ))
    }

    pub(crate) async fn unmap_ports_of(&self, _id: &str) -> Result<()> {
        Ok(())
    }

    /// Called after the peer set changed (no-masquerade set of peer node IPs).
    pub(crate) async fn peers_changed(&self) -> Result<()> {
        Ok(())
    }

    pub(crate) async fn check_ports(&self, _sb: &Sandbox) -> Vec<String> {
        vec![]
    }
}
