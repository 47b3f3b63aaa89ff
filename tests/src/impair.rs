//! Delay and loss on a host's link, as `tc netem` on the host's `eth0`
//! would apply them: to what the host sends. Two backends mean the same:
//! `tc netem` when the kernel has `sch_netem`, and the harness's own packet
//! relay ([`crate::relay`]) when it does not (this build machine's kernel
//! does not). [`Backend::Auto`] picks netem when available.

use std::sync::OnceLock;
use std::time::Duration;

use crate::cmd::CmdError;
use crate::netns::Netns;

/// What to do to a host's outgoing packets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// Added to every packet.
    pub delay: Duration,
    /// Up to this much more, uniformly at random (order is kept by the
    /// relay; netem may reorder).
    pub jitter: Duration,
    /// Probability of dropping a packet, 0 to 1.
    pub loss: f64,
}

impl Impairment {
    /// Only a delay.
    pub fn delay(delay: Duration) -> Impairment {
        Impairment {
            delay,
            ..Impairment::default()
        }
    }

    /// Only loss (probability 0 to 1).
    pub fn loss(loss: f64) -> Impairment {
        Impairment {
            loss,
            ..Impairment::default()
        }
    }

    /// Adds loss.
    pub fn with_loss(self, loss: f64) -> Impairment {
        Impairment { loss, ..self }
    }

    /// Adds jitter.
    pub fn with_jitter(self, jitter: Duration) -> Impairment {
        Impairment { jitter, ..self }
    }

    /// `tc netem` arguments for this impairment.
    pub(crate) fn netem_args(&self) -> Vec<String> {
        let mut args = vec!["netem".to_owned()];
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            args.push("delay".into());
            args.push(format!("{}us", self.delay.as_micros()));
            if !self.jitter.is_zero() {
                args.push(format!("{}us", self.jitter.as_micros()));
            }
        }
        if self.loss > 0.0 {
            args.push("loss".into());
            args.push(format!("{:.4}%", self.loss.clamp(0.0, 1.0) * 100.0));
        }
        args
    }
}

/// How impairments are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// `tc netem` when the kernel has it, else the relay.
    #[default]
    Auto,
    /// `tc netem` on the host's `eth0`; an error where the kernel lacks it.
    Netem,
    /// The harness's packet relay.
    Relay,
}

/// Whether this kernel has `sch_netem` (probed once per process, on a
/// scratch veth in `probe_ns`).
pub fn netem_available(probe_ns: &Netns) -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| probe(probe_ns).is_ok())
}

fn probe(ns: &Netns) -> Result<(), CmdError> {
    ns.ip([
        "link", "add", "nprobe0", "type", "veth", "peer", "name", "nprobe1",
    ])?;
    let r = ns.tc([
        "qdisc", "add", "dev", "nprobe0", "root", "netem", "delay", "1ms",
    ]);
    ns.ip(["link", "del", "nprobe0"])?;
    r.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_arguments() {
        let i = Impairment::delay(Duration::from_millis(100))
            .with_jitter(Duration::from_millis(5))
            .with_loss(0.2);
        assert_eq!(
            i.netem_args(),
            ["netem", "delay", "100000us", "5000us", "loss", "20.0000%"]
        );
        assert_eq!(
            Impairment::loss(1.0).netem_args(),
            ["netem", "loss", "100.0000%"]
        );
        assert_eq!(Impairment::default().netem_args(), ["netem"]);
    }
}
