//! The two system calls the packet relay needs that nix has no safe
//! wrapper for: an integer `SOL_PACKET` socket option and binding a packet
//! socket to an interface. Each `unsafe` block is one call with its
//! reasoning beside it; everything else here is safe nix.

#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::libc;
use nix::net::if_::if_nametoindex;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockProtocol, SockType, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

/// Why a packet socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// A call failed.
    #[error("{what} on interface {ifname}: {source}")]
    Call {
        /// The call.
        what: &'static str,
        /// The interface the socket is for.
        ifname: String,
        /// The cause.
        source: nix::Error,
    },
}

/// A raw packet socket bound to `ifname` in the calling thread's network
/// namespace, seeing every frame that arrives on the interface (not those
/// it sends), each frame prefixed with a virtio-net header so that
/// segmentation-offloaded frames and partial checksums pass through
/// unchanged. Reads time out after `poll` so a reader can notice it should
/// stop.
pub(crate) fn packet_socket(ifname: &str, poll: Duration) -> Result<File, SysError> {
    let err = |what| {
        move |source| SysError::Call {
            what,
            ifname: ifname.to_owned(),
            source,
        }
    };
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map_err(err("socket(AF_PACKET)"))?;
    set_packet_opt(&fd, libc::PACKET_VNET_HDR).map_err(err("PACKET_VNET_HDR"))?;
    set_packet_opt(&fd, libc::PACKET_IGNORE_OUTGOING).map_err(err("PACKET_IGNORE_OUTGOING"))?;
    let index = if_nametoindex(ifname).map_err(err("if_nametoindex"))?;
    bind_to_interface(&fd, index).map_err(err("bind"))?;
    let poll = TimeVal::new(poll.as_secs() as _, poll.subsec_micros() as _);
    setsockopt(&fd, sockopt::ReceiveTimeout, &poll).map_err(err("SO_RCVTIMEO"))?;
    // A bigger buffer rides out bursts while the relay thread is descheduled.
    setsockopt(&fd, sockopt::RcvBufForce, &(4 << 20)).map_err(err("SO_RCVBUFFORCE"))?;
    Ok(File::from(fd))
}

/// Sets an integer `SOL_PACKET` option to 1.
fn set_packet_opt(fd: &OwnedFd, option: libc::c_int) -> Result<(), nix::Error> {
    let one: libc::c_int = 1;
    let (raw, value) = (fd.as_raw_fd(), (&raw const one).cast());
    let len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `raw` is an open socket we own; `value` points at a live c_int of `len` bytes.
    let rc = unsafe { libc::setsockopt(raw, libc::SOL_PACKET, option, value, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::Error::last())
    }
}

/// Binds a packet socket to the interface with index `ifindex`, all
/// protocols.
fn bind_to_interface(fd: &OwnedFd, ifindex: u32) -> Result<(), nix::Error> {
    let addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
        sll_ifindex: ifindex as libc::c_int,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    let (raw, ptr) = (fd.as_raw_fd(), (&raw const addr).cast());
    // SAFETY: `raw` is an open socket we own; `ptr` is an initialised sockaddr_ll of `len` bytes.
    let rc = unsafe { libc::bind(raw, ptr, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::Error::last())
    }
}
